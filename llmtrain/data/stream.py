"""A corpus read as a stream while training (data.streaming=true; what is read:
llmtrain.data.stream_sources). Nothing is downloaded ahead or prepared; the loader reads
documents and tokenises them as training asks for blocks, so training starts at once and the
disk holds no copy of the corpus.

- Order: the stream's own, cut into windows of about _WINDOW_BLOCKS blocks, each window's
  blocks shuffled by (seed, epoch, window). An epoch is one pass over the stream.
- Processes: each reads the stream and takes every `world`-th block, in whole global batches,
  so every process takes the same number of steps and the order is the same for any number of
  processes (a resume with another count continues exactly).
- Resume: the position is a count of blocks. As the stream is first read, where each window
  begins (the source's own position, and the tokens the window before hands on) is appended to
  an index in the cache; a resumed run opens the source at the window its position falls in
  and tokenises from there, not from the beginning. Without the index (another machine's
  cache) it reads the stream up to the position again: as exact, slower.
- Validation: the first data.stream_validation_blocks blocks of held-out text, read at start.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from llmtrain.data.packing import Layout, PackedDataset
from llmtrain.data.prepare import Encoder, Settings
from llmtrain.data.tokens import ArrayTokens
from llmtrain.errors import DataError
from llmtrain.train.contract import Stream

_WINDOW_BLOCKS = 1024  # blocks shuffled together: a wider window mixes more, holds more
_BATCH_CHARS = 1 << 18  # text per encode call: small, so the first block comes soon
_VERSION = 1  # bump when windows are cut differently: older indexes are not reused


class Source(Protocol):
    """What a stream reads (llmtrain.data.stream_sources)."""

    def reader(self, position: Any = None) -> Reader: ...

    def validation(self) -> Iterator[str]: ...

    def fingerprint(self, budget: int) -> str: ...

    def describe(self) -> str: ...


class Reader(Protocol):
    """Training documents from a position; `position()`: where the next unread record is."""

    def __iter__(self) -> Iterator[str]: ...

    def position(self) -> Any: ...


@dataclass
class WindowStart:
    """Where a window begins: its number, the blocks before it, the source's position and the
    tokens (and their documents' lengths) the window before hands on."""

    window: int = 0
    blocks: int = 0
    source: Any = None
    carry: str = ""  # base64 of the token ids, in the settings' dtype
    sizes: list[int] = field(default_factory=list)


class WindowIndex:
    """The window starts of one stream with one tokenizer and layout, a JSON line each,
    appended as they are first read; any run of the same stream shares them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def starts(self) -> dict[int, WindowStart]:
        found: dict[int, WindowStart] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    start = WindowStart(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a line a killed writer cut short
                found.setdefault(start.window, start)
        return found

    @staticmethod
    def before(starts: dict[int, WindowStart], blocks: int) -> WindowStart:
        """The last of `starts` at or before `blocks` blocks (else the beginning)."""
        known = [s for s in starts.values() if s.blocks <= blocks]
        return max(known, key=lambda s: s.window, default=WindowStart())

    def add(self, start: WindowStart) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:  # one line, one write
            f.write(json.dumps(asdict(start)) + "\n")


class StreamedBlocks(Stream):
    """Training blocks packed (llmtrain.data.packing's layouts) from documents as they are
    read, a window of blocks shuffled at a time; a block never holds held-out text."""

    def __init__(
        self,
        source: Source,
        settings: Settings,
        block_size: int,
        kind: Layout = Layout.concat,
        pad: int = 0,
        index_dir: Path | None = None,
        window: int = _WINDOW_BLOCKS,
    ) -> None:
        self.source, self.settings, self.block_size = source, settings, block_size
        self.kind, self.pad, self.window = kind, pad, window
        self.index = None
        if index_dir is not None:
            spec = source.fingerprint(0), asdict(settings), block_size, kind.value, window
            key = hashlib.sha256(json.dumps([spec, _VERSION]).encode()).hexdigest()[:24]
            self.index = WindowIndex(index_dir / f"{key}.jsonl")

    @property
    def what(self) -> str:
        return self.source.describe()

    def examples(
        self, epoch: int, rank: int, world: int, start: int, batch_size: int
    ) -> Iterator[tuple[int, dict]]:
        group = world * batch_size
        begin = start * world  # where this process's `start` stands in the whole order
        starts = self.index.starts() if self.index else {}
        first = WindowIndex.before(starts, begin)
        position, taken = first.blocks, []
        known = set(starts) if self.index and rank == 0 else None  # rank 0 adds the rest
        for w, blocks in self._windows(first, known):
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
                f"the training split of {self.what} holds {position} blocks of trainer.block_size="
                f"{self.block_size}: fewer than one batch of {batch_size} x {world} processes"
            )

    def _windows(
        self, first: WindowStart, known: set[int] | None
    ) -> Iterator[tuple[int, PackedDataset]]:
        """The stream's windows from `first` on, numbered; tokens past a window's last whole
        block begin the next one (in the padded layout a window ends with a document). The
        starts the index lacks of `known` (None: none) are added to it as they are read."""
        encode, reader = Encoder(self.settings), self.source.reader(first.source)
        carry = np.frombuffer(base64.b64decode(first.carry), self.settings.dtype)
        ids, sizes, w, before = carry, list(first.sizes), first.window, first.blocks
        for texts in _chunks(reader):
            flat, lengths = encode(texts)
            ids, sizes = np.concatenate([ids, flat]), sizes + lengths
            if len(ids) >= self.window * self.block_size:
                blocks = self._packed(ids, sizes)
                used = len(ids) if self.kind is Layout.padded else len(blocks) * self.block_size
                ids, sizes = _tail(ids, sizes, used)
                if known is not None and w + 1 not in known:
                    data = base64.b64encode(ids.tobytes()).decode()
                    self.index.add(
                        WindowStart(w + 1, before + len(blocks), reader.position(), data, sizes)
                    )
                yield w, blocks
                w, before = w + 1, before + len(blocks)
        if len(ids) >= self.block_size or (self.kind is Layout.padded and len(ids)):
            yield w, self._packed(ids, sizes)

    def _packed(self, ids: np.ndarray, sizes: list[int]) -> PackedDataset:
        return PackedDataset(ArrayTokens(ids, sizes), self.block_size, self.kind, self.pad)


def validation_blocks(
    source: Source,
    settings: Settings,
    block_size: int,
    kind: Layout,
    pad: int,
    blocks: int,
) -> tuple[PackedDataset, int]:
    """The first `blocks` blocks of held-out text, read now, and how many documents they cut
    from."""
    encode, want = Encoder(settings), blocks * block_size
    ids, sizes = np.zeros(0, settings.dtype), []
    for texts in _chunks(source.validation()):
        flat, lengths = encode(texts)
        ids, sizes = np.concatenate([ids, flat]), sizes + lengths
        if len(ids) >= want:
            break
    if not sizes:
        raise DataError(
            f"the validation split of {source.describe()} holds no text: no document was held "
            "out; raise data.validation_fraction, or give data.validation_split (data=hf) or "
            "data.validation_files"
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
