"""Corpus files read as a stream of documents, in units that can be read independently.

A file is cut into units of about `unit_bytes`: a .txt file at paragraph starts (a paragraph is
a run of non-blank lines), a .jsonl file at line starts, a .parquet file by row groups, an Arrow
file (the datasets cache) by rows. A .gz or .zst file is read as a stream, so it is one unit.
Cutting needs no pass over the data: a cut seeks to its nominal offset and reads forward to the
next boundary. Reading a unit holds one chunk of it in memory at a time.

Errors name the file and the line or the absolute byte offset, so a bad record in a 40 GB
corpus can be found.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import IO

from llmtrain.errors import ConfigError, DataError

KINDS = {".txt": "text", ".text": "text", ".jsonl": "jsonl", ".json": "jsonl"}
KINDS.update({".parquet": "parquet", ".arrow": "arrow"})
COMPRESSIONS = {".gz": "gz", ".zst": "zst"}
SUPPORTED = ".txt, .jsonl or .parquet (the first two optionally .gz or .zst)"
_CHUNK = 4 << 20  # bytes read at a time: large enough for speed, small in memory
_UNITS_PER_FILE = 16  # a large file alone is cut into this many units at least...
_MIN_UNIT = 1 << 20  # ...of this size at least: smaller ones cost more in writing than they save
_BOM = "\ufeff"
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")  # one or more blank lines between paragraphs
_LEADING = re.compile(r"^(?:[^\S\n]*\n)+")
_TRAILING = re.compile(r"(?:\n[^\S\n]*)+$")


@dataclass(frozen=True)
class Unit:
    """A piece of one file: bytes [start, end) of a text or jsonl file, row groups [start, end)
    of a parquet file, rows [start, end) of an Arrow file. `size` is the bytes on disk it
    covers; `fingerprint` changes with the file's path, size and mtime, and with the range."""

    path: str
    kind: str
    compression: str
    start: int
    end: int
    size: int
    fingerprint: str


def find_files(patterns: Sequence[str], key: str) -> list[Path]:
    """Files named by `patterns` (files, globs with `**`, directories: every supported file in
    them), in the order given, each once; `key` is the setting that named them."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and _is_supported(p))
            if not matches:
                raise ConfigError(f"{key}: {path} holds no {SUPPORTED} file")
        elif glob.has_magic(str(path)):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise ConfigError(f"{key}: no file matches {pattern}")
        elif path.is_file():
            matches = [path]
        else:
            raise ConfigError(f"{key}: file not found: {path}")
        for p in matches:
            if not _is_supported(p):
                raise ConfigError(f"{key}: {p} is not {SUPPORTED}")
            found[p] = None
    return list(found)


def _is_supported(path: Path) -> bool:
    try:
        _kind(path)
    except ValueError:
        return False
    return True


def _kind(path: Path) -> tuple[str, str]:
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    compression = COMPRESSIONS.get(suffixes[-1], "") if suffixes else ""
    if compression:
        suffixes.pop()
    kind = KINDS.get(suffixes[-1]) if suffixes else None
    if kind is None or (compression and kind not in ("text", "jsonl")):
        raise ValueError(path)
    return kind, compression


def plan_units(paths: Sequence[Path], unit_bytes: int) -> list[Unit]:
    """The files cut into units of about `unit_bytes` each, in file order. A file of less than
    _UNITS_PER_FILE such units is cut into that many (of _MIN_UNIT at least), so that one large
    file keeps every worker busy; the cut depends on the file alone, never on the workers."""
    units = []
    for path in paths:
        kind, compression = _kind(path)
        stat = path.stat()
        if stat.st_size == 0:
            raise DataError(f"{path}: the file is empty")
        per_unit = min(unit_bytes, max(_MIN_UNIT, stat.st_size // _UNITS_PER_FILE))
        if compression:
            ranges = [(0, stat.st_size, stat.st_size)]
        elif kind == "parquet":
            ranges = _row_group_ranges(path, stat.st_size, per_unit)
        elif kind == "arrow":
            ranges = _row_ranges(path, stat.st_size, per_unit)
        else:
            cuts = _cuts(path, stat.st_size, per_unit, paragraphs=kind == "text")
            ranges = [(a, b, b - a) for a, b in pairwise([0, *cuts, stat.st_size])]
        identity = [str(path.resolve()), stat.st_size, stat.st_mtime_ns, kind, compression]
        for start, end, size in ranges:
            digest = hashlib.sha256(json.dumps([*identity, start, end]).encode()).hexdigest()
            units.append(Unit(str(path), kind, compression, start, end, size, digest[:24]))
    return units


def _cuts(path: Path, size: int, unit_bytes: int, paragraphs: bool) -> list[int]:
    """Offsets where units of a text or jsonl file start: the first line start (after a blank
    line, for paragraphs) at least `unit_bytes` past the last cut. No byte is searched twice,
    so a file without any boundary is read once."""
    cuts: list[int] = []
    with open(path, "rb") as f:
        position = unit_bytes
        while position < size:
            cut = _next_boundary(f, position, paragraphs)
            if cut is None:
                break
            cuts.append(cut)
            position = cut + unit_bytes
    return cuts


def _next_boundary(f: IO[bytes], offset: int, paragraphs: bool) -> int | None:
    f.seek(offset - 1)  # a line starts at `offset` when the byte before it is a newline
    position = offset - 1 + len(f.readline())  # the rest of a line already begun
    after_blank = False
    for line in f:
        if not paragraphs or after_blank:
            return position
        after_blank = not line.strip()
        position += len(line)
    return None


def _row_group_ranges(path: Path, size: int, unit_bytes: int) -> list[tuple[int, int, int]]:
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except Exception as e:  # pyarrow raises several kinds for a file that is not parquet
        raise DataError(f"{path}: not a parquet file ({e})") from None
    sizes = [metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)]
    scale = size / max(sum(sizes), 1)  # bytes on disk per byte of data
    ranges, start, taken = [], 0, 0.0
    for i, group in enumerate(sizes):
        taken += group * scale
        if taken >= unit_bytes or i == len(sizes) - 1:
            ranges.append((start, i + 1, round(taken)))
            start, taken = i + 1, 0.0
    return ranges or [(0, 0, size)]


def _row_ranges(path: Path, size: int, unit_bytes: int) -> list[tuple[int, int, int]]:
    rows = sum(batch.num_rows for batch in _arrow_batches(path))
    count = max(1, min(rows, round(size / unit_bytes)))
    bounds = [rows * i // count for i in range(count + 1)]
    return [(a, b, size * (b - a) // max(rows, 1)) for a, b in pairwise(bounds)]


def _arrow_batches(path: Path) -> Iterator:
    import pyarrow as pa

    source = pa.memory_map(str(path))
    try:
        reader = pa.ipc.open_stream(source)  # what datasets writes
    except pa.ArrowInvalid:
        reader = pa.ipc.open_file(source)
        yield from (reader.get_batch(i) for i in range(reader.num_record_batches))
        return
    yield from reader


def read_documents(unit: Unit, text_field: str = "text", errors: str = "strict") -> Iterator[str]:
    """The unit's non-blank documents in file order: paragraphs of a .txt file (its non-blank
    lines joined with newlines), `record[text_field]` of a jsonl, parquet or Arrow record.
    `errors="replace"` reads bytes that are not UTF-8 as U+FFFD instead of stopping."""
    if unit.kind == "text":
        yield from _paragraphs(unit, errors)
    elif unit.kind == "jsonl":
        yield from _json_lines(unit, text_field, errors)
    else:
        yield from _column(unit, text_field)


def _paragraphs(unit: Unit, errors: str) -> Iterator[str]:
    carry = ""
    for _, text in _texts(unit, errors):
        pieces = _BLANK_LINES.split(carry + text)
        carry = pieces.pop()  # may go on in the next chunk
        yield from _documents(pieces)
    yield from _documents([carry])


def _documents(pieces: list[str]) -> Iterator[str]:
    for piece in pieces:
        if piece.strip():
            yield _TRAILING.sub("", _LEADING.sub("", piece))


def _json_lines(unit: Unit, text_field: str, errors: str) -> Iterator[str]:
    lines_before = 0
    for _, text in _texts(unit, errors):
        for number, line in enumerate(text.split("\n")):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{_where(unit, lines_before + number)}: {e.msg}") from None
            value = record.get(text_field) if isinstance(record, dict) else None
            if not isinstance(value, str):
                where = _where(unit, lines_before + number)
                raise DataError(f"{where}: {_not_text(record, text_field)}")
            if value.strip():
                yield value
        lines_before += text.count("\n")


def _not_text(record: object, field: str) -> str:
    if not isinstance(record, dict):
        return "not a JSON object"
    if field not in record:
        return f"no field '{field}' (data.text_field); fields: {', '.join(record)}"
    return f"field '{field}' is {type(record[field]).__name__}, not text"


def _where(unit: Unit, lines_in_unit: int) -> str:
    """PATH:LINE of a line of the unit (lines before the unit counted only now, on error)."""
    before = 0
    if unit.start and not unit.compression:
        with open(unit.path, "rb") as f:
            remaining = unit.start
            while remaining:
                block = f.read(min(_CHUNK, remaining))
                before, remaining = before + block.count(b"\n"), remaining - len(block)
    return f"{unit.path}:{before + lines_in_unit + 1}"


def _texts(unit: Unit, errors: str) -> Iterator[tuple[int, str]]:
    """(byte offset, decoded text) of the unit, chunk by chunk, each ending at a line end.
    A BOM at the start of the file is dropped; \\r\\n is read as \\n."""
    lines = 0
    for offset, data in _chunks(unit):
        try:
            text = data.decode("utf-8", errors)
        except UnicodeDecodeError as e:
            where = _where(unit, lines + data.count(b"\n", 0, e.start))
            of = "of the decompressed text " if unit.compression else ""
            raise DataError(
                f"{where}: byte {offset + e.start} {of}is not UTF-8 ({e.reason}); "
                "data.decode_errors=replace reads such bytes as U+FFFD"
            ) from None
        lines += data.count(b"\n")
        if offset == 0 and text.startswith(_BOM):
            text = text[1:]
        yield offset, text.replace("\r\n", "\n")


def _chunks(unit: Unit) -> Iterator[tuple[int, bytes]]:
    with _open(unit) as f:
        if not unit.compression:
            f.seek(unit.start)
        offset, remaining, carry = unit.start, unit.end - unit.start, b""
        while True:
            block = _read(unit, f, _CHUNK if unit.compression else min(_CHUNK, remaining))
            remaining -= len(block)
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # a line longer than a chunk: keep reading
                carry = data
                continue
            yield offset, data[:cut]
            offset, carry = offset + cut, data[cut:]
        if carry:
            yield offset, carry


def _open(unit: Unit) -> IO[bytes]:
    if unit.compression == "gz":
        return gzip.open(unit.path, "rb")
    if unit.compression == "zst":
        import zstandard

        file = open(unit.path, "rb")  # noqa: SIM115
        return zstandard.ZstdDecompressor().stream_reader(file, read_across_frames=True)
    return open(unit.path, "rb")  # noqa: SIM115


def _read(unit: Unit, f: IO[bytes], n: int) -> bytes:
    if n <= 0:
        return b""
    import zstandard

    try:
        return f.read(n)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:  # OSError: BadGzipFile
        raise DataError(f"{unit.path}: cannot decompress ({e}): the file is damaged") from None


def _column(unit: Unit, text_field: str) -> Iterator[str]:
    if unit.kind == "parquet":
        import pyarrow.parquet as pq

        file = pq.ParquetFile(unit.path)
        _require_column(unit, file.schema_arrow.names, text_field)
        batches = file.iter_batches(row_groups=range(unit.start, unit.end), columns=[text_field])
        columns = (batch.column(0) for batch in batches)
    else:
        columns = _arrow_rows(unit, text_field)
    for column in columns:
        for value in column.to_pylist():
            if isinstance(value, str) and value.strip():
                yield value


def _arrow_rows(unit: Unit, text_field: str) -> Iterator:
    row = 0
    for batch in _arrow_batches(Path(unit.path)):
        _require_column(unit, batch.schema.names, text_field)
        first, last = max(unit.start - row, 0), min(unit.end - row, batch.num_rows)
        if first < last:
            yield batch.column(text_field).slice(first, last - first)
        row += batch.num_rows
        if row >= unit.end:
            break


def _require_column(unit: Unit, names: list[str], field: str) -> None:
    if field not in names:
        raise DataError(
            f"{unit.path}: no column '{field}' (data.text_field); columns: {', '.join(names)}"
        )
