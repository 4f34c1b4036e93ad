"""A split of a prepared corpus as one stream of token ids with its document boundaries.

`ShardTokens` reads the shards llmtrain.data.prepare wrote, memory-mapped; `ArrayTokens` holds
ids in memory (tests and benchmarks). Either gives `read(start, stop)` of the stream and the
documents' start offsets, which is all packing (llmtrain.data.packing) needs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class ArrayTokens:
    """Token ids in memory, documents back to back (`doc_lengths`; default: one document)."""

    def __init__(self, ids: np.ndarray, doc_lengths: Sequence[int] | None = None) -> None:
        self.ids = np.asarray(ids).reshape(-1)
        lengths = np.asarray([len(self.ids)] if doc_lengths is None else doc_lengths, np.int64)
        if lengths.sum() != len(self.ids):
            raise ValueError(f"document lengths add up to {lengths.sum()}, not {len(self.ids)}")
        self._starts = np.cumsum(lengths) - lengths

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def n_documents(self) -> int:
        return len(self._starts)

    def doc_starts(self) -> np.ndarray:
        return self._starts

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.ids[start:stop]


class ShardTokens:
    """One split ("train" or "validation") of prepared shards, in shard order.

    The maps are opened lazily in each process and left out when pickled, so a DataLoader
    worker maps the files itself instead of receiving a copy of the corpus."""

    def __init__(self, shards: Sequence[Path], split: str) -> None:
        counts = [json.loads((Path(s) / "meta.json").read_text())[split] for s in shards]
        kept = [(Path(s), c) for s, c in zip(shards, counts, strict=True) if c["tokens"] > 0]
        self.split, self.shards = split, [s for s, _ in kept]
        self.n_tokens = sum(c["tokens"] for _, c in kept)
        self.n_documents = sum(c["documents"] for _, c in kept)
        self._offsets = np.cumsum([0] + [c["tokens"] for _, c in kept])
        self._maps: list[np.memmap] | None = None
        self._starts: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None, "_starts": None}

    def _open(self) -> list[np.memmap]:
        if self._maps is None:
            dtype = json.loads((self.shards[0] / "meta.json").read_text())["dtype"]
            self._maps = [
                np.memmap(s / f"{self.split}.bin", dtype=dtype, mode="r") for s in self.shards
            ]
        return self._maps

    def doc_starts(self) -> np.ndarray:
        """Each document's first token in the stream (8 bytes a document, in memory)."""
        if self._starts is None:
            lengths = np.concatenate(
                [np.load(s / f"{self.split}.docs.npy").astype(np.int64) for s in self.shards]
                or [np.zeros(0, np.int64)]
            )
            self._starts = np.cumsum(lengths) - lengths
        return self._starts

    def read(self, start: int, stop: int) -> np.ndarray:
        """Tokens [start, stop) of the stream, across shard ends."""
        maps, offsets = self._open(), self._offsets
        first = int(np.searchsorted(offsets, start, side="right")) - 1
        pieces = []
        while start < stop:
            end = min(stop, int(offsets[first + 1]))
            pieces.append(maps[first][start - offsets[first] : end - offsets[first]])
            start, first = end, first + 1
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
