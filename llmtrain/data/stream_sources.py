"""What a stream (llmtrain.data.stream) reads: a hub dataset (or a local dataset directory)
through datasets' streaming mode, or local files (and the built-in corpus) record by record as
preparation reads them.

A source gives its training documents from a position (`reader(position)`, whose
`position()` says where the next unread record is: JSON, so a stream can record it), its
held-out documents, a sample for a new tokenizer, and a fingerprint of that sample. Held-out
documents are those preparation holds out (its keyed hash and data.validation_fraction), or a
hub dataset's data.validation_split / local data.validation_files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from llmtrain.config import DataConfig, ModelConfig, Source, TokenizerConfig
from llmtrain.data import corpus, sources
from llmtrain.data.prepare import (
    Input,
    Settings,
    held_out_documents,
    is_held_out,
    sample,
    sample_key,
)
from llmtrain.data.records import read_documents
from llmtrain.errors import ConfigError, DataError

_VERSION = 1  # bump when reading or holding out changes: older tokenizers are not reused


def open_stream(cfg: DataConfig, seed: int) -> HubStream | FileStream:
    """The configured corpus as a stream; a wrong dataset name, split or file fails here."""
    if cfg.source is Source.hf:
        hub = HubStream.of(cfg, seed)
        hub.open()
        return hub
    items = tuple(sources.inputs(cfg, seed))
    files = sorted({item.unit.path for item in items})
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return FileStream(items, corpus.reading_settings(cfg, seed), f"the corpus ({shown})")


def tokenizer(
    stream: HubStream | FileStream,
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


@dataclass(frozen=True)
class FileStream:
    """Local files read in order; a position is [unit, records of it read]."""

    items: tuple[Input, ...]
    reading: Settings
    name: str

    def reader(self, position: list[int] | None = None) -> _FileReader:
        return _FileReader(self, position or [0, 0])

    def train(self) -> Iterator[str]:
        return iter(self.reader())

    def validation(self) -> Iterator[str]:
        return held_out_documents(self.items, self.reading)

    def sample(self, budget: int) -> list[str]:
        return sample(self.items, self.reading, budget)

    def fingerprint(self, budget: int) -> str:
        return sample_key(self.items, self.reading.seed, budget)

    def describe(self) -> str:
        return self.name


class _FileReader:
    def __init__(self, stream: FileStream, position: list[int]) -> None:
        self.stream, self.at = stream, list(position)

    def __iter__(self) -> Iterator[str]:
        reading, (first, skip) = self.stream.reading, self.at
        for i in range(first, len(self.stream.items)):
            item = self.stream.items[i]
            texts = read_documents(item.unit, reading.text_field, reading.decode_errors)
            for r, text in enumerate(texts):
                if i == first and r < skip:
                    continue  # read, not tokenised: the records before the position
                self.at = [i, r + 1]
                if not is_held_out(text, item.held_out, reading.seed):
                    yield text
            self.at = [i + 1, 0]

    def position(self) -> list[int]:
        return list(self.at)


@dataclass(frozen=True)
class HubStream:
    """A hub dataset's splits, opened lazily (it pickles as its settings, so a loader worker
    opens its own stream); a position is the `datasets` stream's own state (shard, offset)."""

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

    def reader(self, position: dict[str, Any] | None = None) -> _HubReader:
        return _HubReader(self, position)

    def train(self) -> Iterator[str]:
        """The training documents, in the stream's order."""
        return iter(self.reader())

    def validation(self) -> Iterator[str]:
        """The held-out documents: data.validation_split's, else those the hash holds out."""
        if self.validation_split is not None:
            yield from self.texts(self.open()[self.validation_split], self.validation_split)
            return
        for text in self.texts(self.open()[self.train_split], self.train_split):
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

    def describe(self) -> str:
        return f"data.name={self.name} ({self.train_split})"

    def texts(self, records: datasets.IterableDataset, split: str) -> Iterator[str]:
        """The non-blank texts of a split's records, from wherever `records` stands."""
        for i, record in enumerate(records):
            if self.text_field not in record:
                raise DataError(
                    f"data.name={self.name}: record {i} of {split} has no field "
                    f"'{self.text_field}' (data.text_field); fields: {', '.join(record)}"
                )
            text = record[self.text_field]
            if isinstance(text, str) and text.strip():
                yield text


class _HubReader:
    def __init__(self, stream: HubStream, position: dict[str, Any] | None) -> None:
        self.stream = stream
        self.records = stream.open()[stream.train_split]
        if position is not None:
            self.records.load_state_dict(position)

    def __iter__(self) -> Iterator[str]:
        s = self.stream
        hashed = s.validation_split is None
        for text in s.texts(self.records, s.train_split):
            if not (hashed and is_held_out(text, s.fraction, s.seed)):
                yield text

    def position(self) -> dict[str, Any]:
        return self.records.state_dict()
