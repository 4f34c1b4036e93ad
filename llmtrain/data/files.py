"""Local data files read line by line or record by record (.csv, .tsv, .jsonl, .parquet),
naming the file and row of anything unusable; and the check every reader makes first: that the
path names a file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets

from llmtrain.errors import ConfigError, DataError


def require_file(path: Path, key: str = "", hint: str = "") -> None:
    """Stop unless `path` is a file, saying whether it is missing or a directory (which no
    reader takes; `hint` says what to give instead). `key` is the setting that named it."""
    where = f"{key}: " if key else ""
    if path.is_dir():
        raise ConfigError(f"{where}{path} is a directory, not a file{hint}")
    if not path.is_file():
        raise ConfigError(f"{where}file not found: {path}")


def read_lines(path: Path) -> list[str]:
    require_file(path)
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path}: the file is empty")
    lines = data.split(b"\n")
    out = []
    for number, line in enumerate(lines, 1):
        try:
            out.append(line.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise DataError(
                f"{path}:{number}: byte {e.start} of the line is not UTF-8 ({e.reason})"
            ) from None
    return out


def read_tsv(path: Path, header: bool) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """GLUE's TSVs: tab-separated with quoting off (text holds stray quote characters)."""
    lines = read_lines(path)
    names = lines.pop(0).split("\t") if header else None
    rows = [
        (n, line.split("\t")) for n, line in enumerate(lines, 2 if header else 1) if line.strip()
    ]
    return names, rows


def read_records(path: Path) -> tuple[Path, list[tuple[int, dict]]]:
    """Rows of a csv / tsv / jsonl / parquet file as (row number, record)."""
    require_file(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        records = list(enumerate(datasets.Dataset.from_parquet(str(path)).to_list(), 1))
    elif suffix == ".jsonl":
        records = []
        for number, line in enumerate(read_lines(path), 1):
            if line.strip():
                try:
                    records.append((number, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{number}: not a JSON object ({e.msg})") from None
    elif suffix == ".tsv":
        names, rows = read_tsv(path, header=True)
        records = [(n, dict(zip(names, values, strict=False))) for n, values in rows]
    elif suffix == ".csv":
        reader = csv.DictReader(read_lines(path))
        records = [(reader.line_num, row) for row in reader]
    else:
        raise ConfigError(f"{path}: not .csv, .tsv, .jsonl or .parquet")
    if not records:
        raise DataError(f"{path}: the file has no rows")
    return path, records
