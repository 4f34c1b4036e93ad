"""llmtrain.data.stream: a streamed corpus gives the blocks a prepared one gives (only shuffled
within windows), each block once per epoch over any number of processes, every process the
same number of batches, resumes exactly at any position, and holds documents out by the same
hash as preparation."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
from conftest import PARAGRAPHS

from llmtrain.config import DataConfig, Family, Source, TokenizerConfig
from llmtrain.data import corpus, prepare, stream, stream_sources
from llmtrain.data.packing import Layout, PackedDataset
from llmtrain.data.prepare import Encoder, is_held_out
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.data.tokens import ArrayTokens
from llmtrain.errors import ConfigError, DataError

DOCS = [f"{PARAGRAPHS[i % len(PARAGRAPHS)]} ({i})" for i in range(120)]
BLOCK = 16


@pytest.fixture(autouse=True)
def small_reads(monkeypatch):
    monkeypatch.setattr(stream, "_BATCH_CHARS", 64)  # a few documents an encode: many windows


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = datasets.Dataset.from_dict({"text": PARAGRAPHS})
    cfg = TokenizerConfig(vocab_size=400, min_frequency=1)
    return build_tokenizer(cfg, Family.gpt2, texts, tmp_path_factory.mktemp("tok"), 128)


@pytest.fixture(scope="module")
def settings(tokenizer):
    return corpus.settings(DataConfig(), tokenizer, seed=3)


class Docs:
    """A source in memory: DOCS from a position (a document's index), the positions readers
    start at kept."""

    def __init__(self, docs: list[str] = DOCS) -> None:
        self.docs, self.opened = docs, []

    def reader(self, position: int | None = None) -> _DocsReader:
        self.opened.append(position or 0)
        return _DocsReader(self.docs, position or 0)

    def fingerprint(self, budget: int) -> str:
        return str(len(self.docs))

    def describe(self) -> str:
        return "the stream"


class _DocsReader:
    def __init__(self, docs: list[str], at: int) -> None:
        self.docs, self.at = docs, at

    def __iter__(self):
        while self.at < len(self.docs):
            self.at += 1
            yield self.docs[self.at - 1]

    def position(self) -> int:
        return self.at


def _prepared_blocks(settings, kind: Layout) -> list[dict]:
    """The blocks preparing the same documents gives, in order."""
    ids, sizes = Encoder(settings)(DOCS)
    blocks = PackedDataset(ArrayTokens(ids, sizes), BLOCK, kind, pad=0)
    return [blocks[i] for i in range(len(blocks))]


def _key(example: dict) -> tuple:
    return tuple(tuple(v.tolist()) for _, v in sorted(example.items()))


def _epoch(blocks, epoch=0, rank=0, world=1, start=0, batch=2) -> list[tuple[int, dict]]:
    return list(blocks.examples(epoch, rank, world, start, batch))


@pytest.mark.parametrize("kind", list(Layout))
def test_a_stream_gives_the_prepared_blocks_shuffled_within_windows(settings, kind):
    window = 5  # blocks: many windows, each handing its leftover tokens to the next
    blocks = stream.StreamedBlocks(Docs(), settings, BLOCK, kind, window=window)
    got = [example for _, example in _epoch(blocks, batch=1)]
    expected = _prepared_blocks(settings, kind)
    assert sorted(map(_key, got)) == sorted(map(_key, expected))
    assert [_key(e) for e in got] != [_key(e) for e in expected]  # shuffled
    keys = [_key(e) for e in expected]
    where = {k: i for i, k in enumerate(keys) if keys.count(k) == 1}  # some blocks repeat
    moved = [abs(where[_key(e)] - i) for i, e in enumerate(got) if _key(e) in where]
    assert max(moved) < 2 * window  # locally


def test_processes_share_whole_batches_and_the_order_is_the_same_for_any_count(settings):
    blocks = stream.StreamedBlocks(Docs(), settings, BLOCK, window=7)
    alone = _epoch(blocks, batch=4)
    ranks = [_epoch(blocks, rank=r, world=3, batch=4) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) % 4 == 0
    taken = sorted((p, _key(e)) for r in ranks for p, e in r)
    whole = len(taken) // 12 * 12  # the ragged last global batch is left out
    assert taken == [(p, _key(e)) for p, e in alone[:whole]]
    assert sorted(p for p, _ in ranks[1]) == [p for p, _ in ranks[1]]
    assert all(p % 3 == 1 for p, _ in ranks[1])


@pytest.mark.parametrize("indexed", [False, True])
@pytest.mark.parametrize(("world", "batches"), [(1, 10), (2, 5), (2, 22)])  # past window 0
def test_a_resumed_stream_continues_exactly(tmp_path, settings, world, batches, indexed):
    docs = Docs()
    index = tmp_path / "streams" if indexed else None
    blocks = stream.StreamedBlocks(docs, settings, BLOCK, index_dir=index, window=6)
    for rank in range(world):
        full = _epoch(blocks, rank=rank, world=world, batch=2)
        resumed = _epoch(blocks, rank=rank, world=world, start=batches * 2, batch=2)
        assert [(p, _key(e)) for p, e in resumed] == [(p, _key(e)) for p, e in full[batches * 2 :]]
    # with the index a resumed reader starts where its window does, without it at the start
    assert (docs.opened[-1] > 0) == indexed


def test_a_cut_index_line_is_ignored(tmp_path, settings):
    blocks = stream.StreamedBlocks(Docs(), settings, BLOCK, index_dir=tmp_path, window=6)
    full = _epoch(blocks, batch=2)
    with open(blocks.index.path, "a") as f:
        f.write('{"window": 99, "blocks"')  # a writer killed mid-line
    assert [_key(e) for _, e in _epoch(blocks, start=40, batch=2)] == [
        _key(e) for _, e in full[40:]
    ]


def test_each_epoch_has_its_own_order(settings):
    blocks = stream.StreamedBlocks(Docs(), settings, BLOCK)
    first, second = (_key(e) for _, e in _epoch(blocks, 0)), (_key(e) for _, e in _epoch(blocks, 1))
    assert list(first) != list(second)


def test_a_stream_shorter_than_a_batch_is_refused(settings):
    blocks = stream.StreamedBlocks(Docs(DOCS[:2]), settings, BLOCK)
    with pytest.raises(
        DataError, match=r"training split of the stream holds \d+ blocks .* fewer than one"
    ):
        _epoch(blocks, world=2, batch=32)


def _dataset(tmp_path, validation: bool = False):
    directory = tmp_path / "ds"
    directory.mkdir()
    (directory / "train.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    if validation:
        (directory / "validation.jsonl").write_text(json.dumps({"text": "held out"}) + "\n")
    return directory


def _hub(directory, **kw) -> stream_sources.HubStream:
    cfg = DataConfig(source=Source.hf, name=str(directory), streaming=True, **kw)
    return stream_sources.HubStream.of(cfg, seed=3)


def test_the_hash_holds_out_documents_that_never_reach_training(tmp_path):
    hub = _hub(_dataset(tmp_path), validation_fraction=0.2)
    train, held_out = list(hub.train()), list(hub.validation())
    assert sorted(train + held_out) == sorted(DOCS) and held_out and not set(train) & set(held_out)
    assert held_out == [d for d in DOCS if is_held_out(d, 0.2, 3)]  # as preparation holds out
    assert hub.sample(1000) == train[: len(hub.sample(1000))]
    assert 1000 <= sum(len(t.encode()) for t in hub.sample(1000)) < 1000 + max(map(len, DOCS))


def test_a_validation_split_is_read_whole_and_training_keeps_every_document(tmp_path, settings):
    hub = _hub(_dataset(tmp_path, validation=True), validation_split="validation")
    assert list(hub.train()) == DOCS and list(hub.validation()) == ["held out"]
    with pytest.raises(DataError, match=r"validation corpus has \d+ tokens: fewer than one block"):
        stream.validation_blocks(hub, settings, BLOCK, Layout.concat, 0, 4)


def test_validation_blocks_stop_at_the_asked_number(tmp_path, settings):
    hub = _hub(_dataset(tmp_path), validation_fraction=0.5)
    blocks, documents = stream.validation_blocks(hub, settings, BLOCK, Layout.document, 0, 3)
    assert len(blocks) == 3 and 0 < documents < len(DOCS) // 2
    first = [d for d in DOCS if is_held_out(d, 0.5, 3)]
    ids, _ = Encoder(settings)(first)
    assert torch.equal(blocks[0]["input_ids"], torch.from_numpy(ids[:BLOCK].astype(np.int64)))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"train_split": "nope"}, r"data.train_split=nope: .* has splits train"),
        ({"validation_split": "dev"}, r"data.validation_split=dev: .* has splits train"),
    ],
)
def test_a_wrong_split_is_named_before_any_record_is_read(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message):
        _hub(_dataset(tmp_path), **kw).open()


def test_a_missing_text_field_names_the_record_and_the_fields(tmp_path):
    hub = _hub(_dataset(tmp_path), text_field="body")
    with pytest.raises(DataError, match=r"record 0 of train has no field 'body' .*fields: text"):
        next(hub.train())


def test_a_local_dataset_is_fingerprinted_by_its_files(tmp_path):
    directory = _dataset(tmp_path)
    before = _hub(directory).fingerprint(100)
    assert _hub(directory).fingerprint(100) == before != _hub(directory).fingerprint(200)
    (directory / "train.jsonl").write_text(json.dumps({"text": "changed"}) + "\n")
    assert _hub(directory).fingerprint(100) != before


def test_local_files_stream_the_blocks_their_prepared_shards_hold(tmp_path, tokenizer, settings):
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(DOCS) + "\n")
    cfg = DataConfig(
        source=Source.text_files,
        train_files=[str(path)],
        cache_dir=str(tmp_path / "cache"),
        validation_fraction=0.2,
        shard_mb=0.002,  # several units, read one after another
    )
    files = stream_sources.open_stream(cfg, seed=3)
    plan = corpus.plan_for(cfg, tokenizer, seed=3)
    corpus.run(plan, 1)
    prepared = corpus.splits(plan)
    assert len(files.items) > 1
    assert files.fingerprint(1000) == prepare.sample_key(plan.items, 3, 1000)  # one tokenizer
    blocks = stream.StreamedBlocks(files, settings, BLOCK, window=4)
    streamed = sorted(_key(e) for _, e in _epoch(blocks, batch=1))
    train = PackedDataset(prepared["train"], BLOCK)
    assert streamed == sorted(_key(train[i]) for i in range(len(train)))
    validation, documents = stream.validation_blocks(files, settings, BLOCK, Layout.concat, 0, 1000)
    assert documents == prepared["validation"].n_documents
    held_out = PackedDataset(prepared["validation"], BLOCK)
    assert [_key(validation[i]) for i in range(len(validation))] == [
        _key(held_out[i]) for i in range(len(held_out))
    ]
