"""Prepare a corpus for pretraining: token shards on disk, built in parallel, never in memory.

The input is cut into units (llmtrain.data.records: about `data.shard_mb` of a file each). Each
unit becomes one shard: its documents are read record by record, tokenised in batches and
appended to the shard's files as they come, by one of `data.num_proc` worker processes. Neither
the text nor the token ids of the corpus are held in memory, so memory stays flat in corpus
size.

A shard is a directory that appears complete or not at all (an atomic rename), named by a key
of its unit (the file's path, size, mtime and byte range) and of all that decides its tokens
(tokenizer, hold-out). So a preparation killed at any point and rerun continues from the shards
already complete, none redone and none half-used; a changed file or setting redoes exactly the
shards that depend on it.

A shard holds its unit's training and validation documents: `<split>.bin` (token ids, uint16
when the vocabulary fits, else uint32) and `<split>.docs.npy` (tokens per document), plus
`meta.json`. A document is held out for validation by a keyed hash of its text (seed and
fraction): the same split for any number of processes or order of files, and a text repeated in
the corpus always lands on the same side.
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from llmtrain.atomic import atomic_dir
from llmtrain.data.records import Unit, read_documents
from llmtrain.errors import DataError

# Bump when reading, tokenising or the shard layout below changes: older shards are not reused.
PREPARE_VERSION = 1
SPLITS = ("train", "validation")
_BATCH_CHARS = 1 << 20  # text per encode call: large enough for the tokenizer, small in memory


@dataclass(frozen=True)
class Input:
    """A unit of input, the share of its documents held out for validation (0: all train,
    1: all validation) and the source it belongs to (a mixture's; else "")."""

    unit: Unit
    held_out: float
    source: str = ""


@dataclass(frozen=True)
class Settings:
    """What every worker needs besides its unit: how to read, tokenise and hold out."""

    tokenizer_json: str  # the backend tokenizer, serialised (workers rebuild it)
    eos_id: int | None  # appended to a document that does not end with it
    dtype: str
    seed: int
    text_field: str = "text"
    decode_errors: str = "strict"

    def key(self, item: Input) -> str:
        """The shard's name: its unit and everything that decides its tokens."""
        spec = {
            "unit": item.unit.fingerprint,
            "held_out": item.held_out,
            "seed": self.seed if 0 < item.held_out < 1 else None,
            "tokenizer": hashlib.sha256(self.tokenizer_json.encode()).hexdigest(),
            "eos": self.eos_id,
            "dtype": self.dtype,
            "field": self.text_field if item.unit.kind != "text" else None,
            "errors": self.decode_errors,
            "version": PREPARE_VERSION,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Outcome:
    """What a preparation found and did: the shards in input order, how many were complete
    already and how many this call prepared."""

    shards: list[Path]
    reused: int
    prepared: int


Progress = Callable[[int, int, int], None]  # (characters read, input bytes in all, tokens)


def token_dtype(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def is_held_out(text: str, fraction: float, seed: int) -> bool:
    """Whether a document goes to validation: a keyed hash of its text below `fraction`."""
    if fraction <= 0 or fraction >= 1:
        return fraction >= 1
    digest = hashlib.blake2b(text.encode(), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "little") < fraction * 2**64


def documents(item: Input, settings: Settings, split: str) -> Iterator[str]:
    """One split's documents of a unit, in file order."""
    want_held_out = split == "validation"
    for text in read_documents(item.unit, settings.text_field, settings.decode_errors):
        if is_held_out(text, item.held_out, settings.seed) == want_held_out:
            yield text


def held_out_documents(items: Sequence[Input], settings: Settings) -> Iterator[str]:
    """The validation documents of all units, in order; units holding none are not read."""
    for item in items:
        if item.held_out > 0:
            yield from documents(item, settings, "validation")


def sample(items: Sequence[Input], settings: Settings, budget: int) -> list[str]:
    """Training documents for a new tokenizer, about `budget` bytes spread over the units in
    proportion to their size: each unit's first documents, so the same corpus gives the same
    sample."""
    train = [item for item in items if item.held_out < 1]
    total = sum(item.unit.size for item in train) or 1
    texts: list[str] = []
    for item in train:
        share, taken = budget * item.unit.size / total, 0
        for text in documents(item, settings, "train"):
            if taken >= share:
                break
            texts.append(text)
            taken += len(text.encode())
    return texts


def sample_key(items: Sequence[Input], seed: int, budget: int) -> str:
    """A fingerprint of the sample `sample` takes, known without reading a byte."""
    spec = [(i.unit.fingerprint, i.held_out) for i in items], seed, budget, PREPARE_VERSION
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


def prepare(
    items: Sequence[Input],
    settings: Settings,
    directory: Path,
    num_proc: int,
    share: tuple[int, int] = (0, 1),
    progress: Progress | None = None,
) -> Outcome:
    """Make sure every item's shard exists in `directory`, preparing the missing ones of this
    share (`share=(i, n)`: the items whose index is i modulo n) over `num_proc` processes."""
    directory.mkdir(parents=True, exist_ok=True)
    shards = [directory / settings.key(item) for item in items]
    missing = [i for i, path in enumerate(shards) if not is_complete(path)]
    mine = [(items[i], shards[i]) for i in missing if i % share[1] == share[0]]
    for _, shard in mine:  # what a killed run left of the shards this share prepares
        for scratch in directory.glob(f".{shard.name}.tmp-*"):
            shutil.rmtree(scratch, ignore_errors=True)
    if mine:
        _run(mine, settings, num_proc, progress)
    return Outcome(shards, len(items) - len(missing), len(mine))


def is_complete(shard: Path) -> bool:
    return (shard / "meta.json").is_file()


def _run(todo: list[tuple[Input, Path]], settings: Settings, num_proc: int, progress) -> None:
    total = sum(item.unit.size for item, _ in todo)
    if num_proc <= 1 or len(todo) == 1:
        _init(settings, None)
        for done, (item, path) in enumerate(todo):
            _guard(_prepare_one, item, path, remaining=todo[done:])
            if progress:
                progress(_counted["chars"], total, _counted["tokens"])
        return
    context = mp.get_context("spawn")  # fork is unsafe after torch or tokenizers made threads
    counters = context.Array("q", 2)
    workers = min(num_proc, len(todo))
    with context.Pool(workers, initializer=_init, initargs=(settings, counters)) as pool:
        pending = [(pool.apply_async(_prepare_one, job), i) for i, job in enumerate(todo)]
        while pending:
            time.sleep(0.2)
            if progress:
                progress(counters[0], total, counters[1])
            for result, i in [p for p in pending if p[0].ready()]:
                pending.remove((result, i))
                _guard(result.get, remaining=todo[i:])


def _guard(fn: Callable, *args: Any, remaining: Sequence[tuple[Input, Path]]) -> Any:
    """Turn a full disk into one line that says how much space the rest needs."""
    try:
        return fn(*args)
    except _DiskFull as e:
        ratio = e.written / max(e.read, 1)
        need = ratio * sum(item.unit.size for item, _ in remaining)
        raise DataError(
            f"the disk is full while preparing {e.shard}: the shards left need about "
            f"{need / 1e9:.2f} GB more ({ratio:.2f} bytes of shard per byte of text so far); "
            "free some space and rerun: the complete shards are kept"
        ) from None


class _DiskFull(Exception):
    def __init__(self, shard: str, written: int, read: int) -> None:
        super().__init__(shard, written, read)
        self.shard, self.written, self.read = shard, written, read


# Each worker's tokenizer and counters, set once by _init (a pool's initializer).
_worker: dict[str, Any] = {}
_counted = {"chars": 0, "tokens": 0}


def _init(settings: Settings, counters: Any) -> None:
    if counters is not None:  # one process per core: the tokenizer's own threads would compete
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker.update(settings=settings, encode=Encoder(settings), counters=counters)
    _counted.update(chars=0, tokens=0)


def _prepare_one(item: Input, shard: Path) -> dict[str, Any]:
    """Write one unit's shard (in a scratch directory renamed when complete)."""
    for stale in shard.parent.glob(f".{shard.name}.tmp-*"):  # left by a killed preparation
        shutil.rmtree(stale, ignore_errors=True)
    settings: Settings = _worker["settings"]
    read = written = 0
    try:
        with atomic_dir(shard) as tmp:
            files = {s: open(tmp / f"{s}.bin", "wb") for s in SPLITS}  # noqa: SIM115
            lengths: dict[str, list[int]] = {s: [] for s in SPLITS}
            with files["train"], files["validation"]:
                for split, batch in _batches(item, settings):
                    ids, sizes = _worker["encode"](batch)
                    chars = sum(map(len, batch))
                    read, written = read + chars, written + ids.nbytes  # counted if it fails
                    _append(files[split], ids)
                    lengths[split].extend(sizes)
                    _count(chars, len(ids))
            meta = {"unit": asdict(item.unit), "held_out": item.held_out, "dtype": settings.dtype}
            for split in SPLITS:
                np.save(tmp / f"{split}.docs.npy", np.asarray(lengths[split], dtype=np.uint32))
                meta[split] = {"documents": len(lengths[split]), "tokens": sum(lengths[split])}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise _DiskFull(item.unit.path, written, read) from None
        raise
    return meta


def _batches(item: Input, settings: Settings) -> Iterator[tuple[str, list[str]]]:
    """(split, documents) in batches of about _BATCH_CHARS characters, per split."""
    pending: dict[str, list[str]] = {s: [] for s in SPLITS}
    size = dict.fromkeys(SPLITS, 0)
    for text in read_documents(item.unit, settings.text_field, settings.decode_errors):
        split = SPLITS[is_held_out(text, item.held_out, settings.seed)]
        pending[split].append(text)
        size[split] += len(text)
        if size[split] >= _BATCH_CHARS:
            yield split, pending[split]
            pending[split], size[split] = [], 0
    for split in SPLITS:
        if pending[split]:
            yield split, pending[split]


class Encoder:
    """Documents to token ids as preparation writes them: back to back, an end-of-text token
    closing each where the tokenizer has one, with each document's length."""

    def __init__(self, settings: Settings) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(settings.tokenizer_json)
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.eos, self.dtype = settings.eos_id, settings.dtype

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        encoded = [e.ids for e in self.tokenizer.encode_batch_fast(texts)]
        if self.eos is not None:
            encoded = [ids if ids and ids[-1] == self.eos else [*ids, self.eos] for ids in encoded]
        sizes = [len(ids) for ids in encoded]
        flat = np.fromiter(chain.from_iterable(encoded), dtype=self.dtype, count=sum(sizes))
        return flat, sizes


def _append(file: Any, ids: np.ndarray) -> None:
    ids.tofile(file)


def _count(chars: int, tokens: int) -> None:
    counters = _worker["counters"]
    if counters is None:
        _counted["chars"] += chars
        _counted["tokens"] += tokens
        return
    with counters.get_lock():
        counters[0] += chars
        counters[1] += tokens
