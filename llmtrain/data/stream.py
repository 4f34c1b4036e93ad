"""A hub dataset (or a local dataset directory) read as a stream while training
(data.streaming=true): nothing is downloaded ahead or prepared; the loader reads documents and
tokenises them as training asks for blocks, so training starts at once and the disk holds none
of it.

- Order: the stream's own, cut into windows of about _WINDOW_BLOCKS blocks, each window's
  blocks shuffled by (seed, epoch, window). An epoch is one pass over the stream.
- Processes: each reads the stream and takes every `world`-th block, in whole global batches,
  so every process takes the same number of steps and the order is the same for any number of
  processes (a resume with another count continues exactly).
- Resume: the position is a count of examples; a resumed run reads and tokenises the stream up
  to it again and continues exactly there, at the cost of that reading.
- Validation: the training split's documents held out by preparation's keyed hash
  (data.validation_fraction; they never reach training), or data.validation_split's, read at
  the start up to data.stream_validation_blocks blocks.
- A new tokenizer learns from the first `tokenizer.train_sample` bytes of training documents.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from llmtrain.config import DataConfig, ModelConfig, TokenizerConfig
from llmtrain.data import corpus
from llmtrain.data.packing import Layout, PackedDataset
from llmtrain.data.prepare import Encoder, Settings, is_held_out
from llmtrain.data.tokens import ArrayTokens
from llmtrain.errors import ConfigError, DataError
from llmtrain.train.contract import Stream

_WINDOW_BLOCKS = 1024  # blocks shuffled together: a wider window mixes more, holds more
_BATCH_CHARS = 1 << 18  # text per encode call: small, so the first block comes soon
_VERSION = 1  # bump when reading or holding out changes: older tokenizers are not reused


@dataclass(frozen=True)
class HubStream:
    """The documents of a hub dataset's splits, opened lazily: it pickles as its settings, so a
    loader worker opens its own stream."""

    name: str
    config: str | None
    train_split: str
    validation_split: str | None
    text_field: str
    fraction: float
    seed: int

    @classmethod
    def of(cls, cfg: DataConfig, seed: int) -> HubStream:
        if not cfg.name:
            raise ConfigError("data.name is required with data=hf")
        return cls(
            cfg.name,
            cfg.config,
            cfg.train_split,
            cfg.validation_split,
            cfg.text_field,
            cfg.validation_fraction,
            seed,
        )

    def open(self) -> datasets.IterableDatasetDict:
        """The splits, no record read yet: a wrong name or split fails here, at once."""
        try:
            loaded = datasets.load_dataset(self.name, self.config, streaming=True)
        except (FileNotFoundError, ValueError, ConnectionError, OSError) as e:
            raise ConfigError(f"data.name={self.name}: cannot load the dataset: {e}") from e
        for key, split in (
            ("data.train_split", self.train_split),
            ("data.validation_split", self.validation_split),
        ):
            if split is not None and split not in loaded:
                raise ConfigError(f"{key}={split}: {self.name} has splits {', '.join(loaded)}")
        return loaded

    def train(self) -> Iterator[str]:
        """The training documents, in the stream's order."""
        hashed = self.validation_split is None
        for text in self._documents(self.train_split):
            if not (hashed and is_held_out(text, self.fraction, self.seed)):
                yield text

    def validation(self) -> Iterator[str]:
        """The held-out documents: data.validation_split's, else those the hash holds out."""
        if self.validation_split is not None:
            yield from self._documents(self.validation_split)
            return
        for text in self._documents(self.train_split):
            if is_held_out(text, self.fraction, self.seed):
                yield text

    def sample(self, budget: int) -> list[str]:
        """The first `budget` bytes of training documents."""
        texts, taken = [], 0
        for text in self.train():
            if taken >= budget:
                break
            texts.append(text)
            taken += len(text.encode())
        return texts

    def fingerprint(self, budget: int) -> str:
        """What decides `sample(budget)`, known without reading a record: the settings, and a
        local dataset's files (path, size, mtime); a hub dataset is taken by its name."""
        local = Path(self.name).expanduser()
        files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else []
        stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        spec = asdict(self), budget, stats, _VERSION
        return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]

    def _documents(self, split: str) -> Iterator[str]:
        for i, record in enumerate(self.open()[split]):
            if self.text_field not in record:
                raise DataError(
                    f"data.name={self.name}: record {i} of {split} has no field "
                    f"'{self.text_field}' (data.text_field); fields: {', '.join(record)}"
                )
            text = record[self.text_field]
            if isinstance(text, str) and text.strip():
                yield text


def tokenizer(
    stream: HubStream,
    cfg: DataConfig,
    tokenizer_cfg: TokenizerConfig,
    model: ModelConfig,
    fallback_path: str | None = None,
) -> PreTrainedTokenizerBase:
    """The configured tokenizer; a new one learns from the stream's first training bytes."""
    budget = tokenizer_cfg.train_sample
    return corpus.tokenizer_for(
        cfg,
        tokenizer_cfg,
        model,
        lambda: stream.sample(budget),
        stream.fingerprint(budget),
        fallback_path,
    )


class StreamedBlocks(Stream):
    """Training blocks packed (llmtrain.data.packing's layouts) from documents as they are
    read, a window of blocks shuffled at a time; a block never holds held-out text."""

    def __init__(
        self,
        documents: Callable[[], Iterable[str]],
        settings: Settings,
        block_size: int,
        kind: Layout = Layout.concat,
        pad: int = 0,
        window: int = _WINDOW_BLOCKS,
    ) -> None:
        self.documents, self.settings, self.block_size = documents, settings, block_size
        self.kind, self.pad, self.window = kind, pad, window

    def examples(
        self, epoch: int, rank: int, world: int, start: int, batch_size: int
    ) -> Iterator[tuple[int, dict]]:
        group = world * batch_size
        begin = start * world  # where this process's `start` stands in the whole order
        position, taken = 0, []
        for w, blocks in enumerate(self._windows()):
            n = len(blocks)
            if position + n > begin:
                order = np.random.default_rng((self.settings.seed, epoch, w)).permutation(n)
                for j in range(max(0, begin - position), n):
                    if (position + j) % world == rank:
                        taken.append((position + j, blocks[int(order[j])]))
                    if (position + j + 1) % group == 0:  # a whole global batch: all take it
                        yield from taken
                        taken = []
            position += n
        if position < group:
            raise DataError(
                f"the training stream holds {position} blocks of trainer.block_size="
                f"{self.block_size}: fewer than one batch of {batch_size} x {world} processes"
            )

    def _windows(self) -> Iterator[PackedDataset]:
        """The stream's blocks, a window at a time; tokens past a window's last whole block
        begin the next one (in the padded layout a window ends with a document)."""
        encode = Encoder(self.settings)
        ids, sizes = np.zeros(0, self.settings.dtype), []
        for texts in _chunks(self.documents()):
            flat, lengths = encode(texts)
            ids, sizes = np.concatenate([ids, flat]), sizes + lengths
            if len(ids) >= self.window * self.block_size:
                blocks = self._packed(ids, sizes)
                used = len(ids) if self.kind is Layout.padded else len(blocks) * self.block_size
                yield blocks
                ids, sizes = _tail(ids, sizes, used)
        if len(ids) >= self.block_size or (self.kind is Layout.padded and len(ids)):
            yield self._packed(ids, sizes)

    def _packed(self, ids: np.ndarray, sizes: list[int]) -> PackedDataset:
        return PackedDataset(ArrayTokens(ids, sizes), self.block_size, self.kind, self.pad)


def validation_blocks(
    stream: HubStream, settings: Settings, block_size: int, kind: Layout, pad: int, blocks: int
) -> tuple[PackedDataset, int]:
    """The first `blocks` blocks of held-out text, read now, and how many documents they cut
    from."""
    encode, want = Encoder(settings), blocks * block_size
    ids, sizes = np.zeros(0, settings.dtype), []
    for texts in _chunks(stream.validation()):
        flat, lengths = encode(texts)
        ids, sizes = np.concatenate([ids, flat]), sizes + lengths
        if len(ids) >= want:
            break
    if not sizes:
        raise DataError(
            f"the validation split of data.name={stream.name} holds no text: no document was "
            "held out; raise data.validation_fraction or give data.validation_split"
        )
    ids, sizes = _head(ids, sizes, want)
    return PackedDataset(ArrayTokens(ids, sizes), block_size, kind, pad, "validation"), len(sizes)


def _chunks(texts: Iterable[str]) -> Iterator[list[str]]:
    chunk, size = [], 0
    for text in texts:
        chunk.append(text)
        size += len(text)
        if size >= _BATCH_CHARS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _head(ids: np.ndarray, sizes: list[int], n: int) -> tuple[np.ndarray, list[int]]:
    """The first `n` tokens and their documents' lengths (the last one cut)."""
    ends = np.cumsum(sizes)
    k = int(np.searchsorted(ends, n, side="left"))  # the document holding token n - 1
    if k >= len(sizes):
        return ids, sizes
    return ids[:n], [*sizes[:k], n - int(ends[k - 1] if k else 0)]


def _tail(ids: np.ndarray, sizes: list[int], n: int) -> tuple[np.ndarray, list[int]]:
    """The tokens from `n` on and their documents' lengths (the first one cut)."""
    ends = np.cumsum(sizes)
    k = int(np.searchsorted(ends, n, side="right"))  # the first document ending after token n
    if k >= len(sizes):
        return ids[:0], []
    return ids[n:], [int(ends[k]) - n, *sizes[k + 1 :]]
