"""llmtrain.data.prepare (through llmtrain.data.corpus): token shards equal to tokenising the
documents in file order, the same for 1 and 2 processes and any shard size, a seeded hold-out,
shards reused after a stop and redone exactly where an input changed, and a full disk or a bad
byte that keeps the complete shards."""

from __future__ import annotations

import errno
import os
from itertools import pairwise

import datasets
import numpy as np
import pytest
import torch
from conftest import PARAGRAPHS

from llmtrain.config import DataConfig, Family, Source, TokenizerConfig
from llmtrain.data import corpus, prepare
from llmtrain.data.packing import Layout, PackedDataset
from llmtrain.data.tokenizer import build_tokenizer
from llmtrain.data.tokens import ArrayTokens
from llmtrain.errors import DataError


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = datasets.Dataset.from_dict({"text": PARAGRAPHS})
    cfg = TokenizerConfig(vocab_size=400, min_frequency=1)
    return build_tokenizer(cfg, Family.gpt2, texts, tmp_path_factory.mktemp("tok"), 128)


def _corpus_files(tmp_path, n_files: int = 3, repeat: int = 40) -> list[str]:
    """Files of numbered paragraphs (every document distinct), about 25 KB each."""
    files = []
    for f in range(n_files):
        path = tmp_path / f"part{f}.txt"
        docs = [f"{PARAGRAPHS[i % len(PARAGRAPHS)]} ({f}-{i})" for i in range(repeat * 5)]
        path.write_text("\n\n".join(docs) + "\n")
        files.append(str(path))
    return files


def _cfg(tmp_path, files, **kw) -> DataConfig:
    return DataConfig(
        source=Source.text_files, train_files=files, cache_dir=str(tmp_path / "cache"), **kw
    )


def _prepared(cfg: DataConfig, tokenizer, num_proc: int = 1, seed: int = 0):
    plan = corpus.plan_for(cfg, tokenizer, seed)
    outcome = corpus.run(plan, num_proc)
    return plan, outcome, corpus.splits(plan)


def _docs(tokens) -> list[list[int]]:
    ids = tokens.read(0, tokens.n_tokens).tolist()
    bounds = [*tokens.doc_starts().tolist(), tokens.n_tokens]
    return [ids[a:b] for a, b in pairwise(bounds)]


def _files_of(outcome) -> dict[str, bytes]:
    return {
        f"{i}/{f.name}": f.read_bytes()
        for i, shard in enumerate(outcome.shards)
        for f in sorted(shard.iterdir())
        if f.name != "meta.json"
    }


def test_shards_are_the_documents_tokenised_in_file_order(tmp_path, tokenizer):
    files = _corpus_files(tmp_path)
    _, _, splits = _prepared(_cfg(tmp_path, files, shard_mb=1), tokenizer)
    texts = [p.strip("\n") for f in files for p in open(f).read().split("\n\n")]
    expected = [ids + [tokenizer.eos_token_id] for ids in tokenizer(texts)["input_ids"]]
    train, validation = _docs(splits["train"]), _docs(splits["validation"])
    assert sorted(train + validation) == sorted(expected)
    # each split keeps the file order: a subsequence of the documents
    held = {tuple(d) for d in validation}
    assert train == [d for d in expected if tuple(d) not in held]
    assert 0 < len(validation) < 0.15 * len(expected)  # validation_fraction 0.05, by hash
    assert splits["train"].read(0, 5).dtype == np.uint16


def test_one_or_two_processes_and_any_shard_size_give_the_same_tokens(tmp_path, tokenizer):
    files = _corpus_files(tmp_path, n_files=4)
    _, one, splits_one = _prepared(_cfg(tmp_path / "a", files), tokenizer, num_proc=1)
    _, two, splits_two = _prepared(_cfg(tmp_path / "b", files), tokenizer, num_proc=2)
    assert len(one.shards) == 4 and two.prepared == 4
    assert _files_of(one) == _files_of(two)
    # shards of ~1 MB or of a few KB: other shards, the same token stream
    small = _cfg(tmp_path / "c", files)
    small.shard_mb = 0.004  # about 4 KB: several shards a file
    _, cut, splits_small = _prepared(small, tokenizer)
    assert len(cut.shards) > 12
    for split in ("train", "validation"):
        assert _docs(splits_one[split]) == _docs(splits_two[split]) == _docs(splits_small[split])


def test_the_hold_out_follows_the_seed(tmp_path, tokenizer):
    files = _corpus_files(tmp_path)
    held = [
        _docs(_prepared(_cfg(tmp_path / str(seed), files), tokenizer, seed=seed)[2]["validation"])
        for seed in (0, 0, 1)
    ]
    assert held[0] == held[1] and held[0] != held[2]


def test_complete_shards_are_reused_and_a_changed_file_redoes_only_its_own(tmp_path, tokenizer):
    files = _corpus_files(tmp_path)
    cfg = _cfg(tmp_path, files)
    plan, first, _ = _prepared(cfg, tokenizer)
    assert (first.reused, first.prepared) == (0, 3)
    _, again, _ = _prepared(cfg, tokenizer)
    assert (again.reused, again.prepared) == (3, 0)
    with open(files[1], "a") as f:
        f.write("\nOne more paragraph, appended later.\n")
    _, changed, _ = _prepared(cfg, tokenizer)
    assert (changed.reused, changed.prepared) == (2, 1)
    assert changed.shards[0] == first.shards[0] and changed.shards[1] != first.shards[1]


def test_a_bad_byte_names_file_and_offset_and_keeps_the_complete_shards(tmp_path, tokenizer):
    files = _corpus_files(tmp_path, n_files=2)
    data = open(files[1], "rb").read()
    with open(files[1], "wb") as f:
        f.write(data[:5000] + b"\xff" + data[5000:])
    cfg = _cfg(tmp_path, files)
    with pytest.raises(DataError, match=rf"{files[1]}.*byte 5000"):
        _prepared(cfg, tokenizer)
    plan = corpus.plan_for(cfg, tokenizer, 0)
    complete = [prepare.is_complete(plan.directory / plan.settings.key(i)) for i in plan.items]
    assert complete == [True, False]


def test_a_full_disk_says_how_much_space_is_needed_and_leaves_no_shard(
    tmp_path, tokenizer, monkeypatch
):
    files = _corpus_files(tmp_path, n_files=2)
    cfg = _cfg(tmp_path, files)

    def full(file, ids):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(prepare, "_append", full)
    with pytest.raises(DataError, match=r"disk is full.*need about [\d.]+ GB more"):
        _prepared(cfg, tokenizer)
    monkeypatch.undo()
    plan = corpus.plan_for(cfg, tokenizer, 0)
    assert not any(prepare.is_complete(plan.directory / plan.settings.key(i)) for i in plan.items)
    assert not [p for p in plan.directory.iterdir() if p.name.startswith(".")]  # no scratch
    _, outcome, _ = _prepared(cfg, tokenizer)
    assert outcome.prepared == 2


@pytest.mark.parametrize("kind", list(Layout))
def test_blocks_from_shards_are_the_blocks_of_the_documents_tokenised_in_memory(
    tmp_path, tokenizer, kind
):
    """What training reads from the shards (every layout) equals packing the same documents'
    token ids held in memory: the same blocks, so the same losses."""
    files = _corpus_files(tmp_path, n_files=2)
    cfg = _cfg(tmp_path, files, shard_mb=0.004)
    _, _, splits = _prepared(cfg, tokenizer)
    docs = _docs(splits["train"])
    in_memory = ArrayTokens(np.concatenate(docs), [len(d) for d in docs])
    pad = tokenizer.eos_token_id
    from_shards = PackedDataset(splits["train"], 32, kind, pad)
    expected = PackedDataset(in_memory, 32, kind, pad)
    assert len(from_shards) == len(expected) > 20
    for i in range(len(expected)):
        a, b = from_shards[i], expected[i]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
