"""llmtrain.data.records: every format and compression reads the same documents, cut into any
number of units; files, globs and directories; errors that name the file and the line or byte."""

from __future__ import annotations

import gzip
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from llmtrain.data.records import find_files, plan_units, read_documents
from llmtrain.errors import ConfigError, DataError

DOCS = [
    f"Document {i} says {'a few words ' * (i % 7 + 1)}.\nIts second line {i}." for i in range(300)
]


def _read(paths, unit_bytes=1 << 26, **kw) -> list[str]:
    return [d for u in plan_units(paths, unit_bytes) for d in read_documents(u, **kw)]


def test_paragraphs_are_non_blank_lines_whatever_the_line_ends_and_bom(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(
        "\ufeffFirst line\r\nsame paragraph\r\n\r\n  \n\n  indented second\n\t\nthird\n".encode()
    )
    assert _read([f]) == ["First line\nsame paragraph", "  indented second", "third"]


@pytest.mark.parametrize("suffix", ["txt", "jsonl"])
def test_any_unit_size_reads_the_same_documents(tmp_path, suffix):
    f = tmp_path / f"corpus.{suffix}"
    if suffix == "txt":
        f.write_text("\n\n".join(DOCS) + "\n")
    else:
        f.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(DOCS)))
    whole = plan_units([f], 1 << 26)
    cut = plan_units([f], 1000)
    assert len(whole) == 1 and len(cut) > 10
    # the units tile the file, and no document is split or lost at a cut
    assert [u.end for u in cut[:-1]] == [u.start for u in cut[1:]] and cut[
        -1
    ].end == f.stat().st_size
    assert _read([f], 1000) == _read([f]) == DOCS
    assert len({u.fingerprint for u in cut}) == len(cut)


def test_a_large_file_alone_is_cut_into_sixteen_units_of_a_mebibyte_at_least(tmp_path):
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    big.write_text("\n\n".join(DOCS * 1100) + "\n")  # 28 MiB: 16 units of its 1/16
    small.write_text("\n\n".join(DOCS * 60) + "\n")  # 1.5 MiB: 1 MiB, then the rest
    units = plan_units([big, small], 64 << 20)  # shard_mb=64 would be one unit each
    sizes = [u.size for u in units if u.path == str(big)]
    assert len(sizes) == 16 and max(sizes) - min(sizes) < 1000
    assert [u.size >= 1 << 20 for u in units if u.path == str(small)] == [True, False]
    assert len(plan_units([big], 1 << 20)) > 16  # a given smaller unit still rules


def test_compressed_files_read_as_the_plain_one(tmp_path):
    text = ("\n\n".join(DOCS) + "\n").encode()
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text))
    (tmp_path / "a.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(text))
    units = plan_units([tmp_path / "a.txt.gz", tmp_path / "a.txt.zst"], 1000)
    assert [u.compression for u in units] == ["gz", "zst"]  # a stream: one unit each
    assert [list(read_documents(u)) for u in units] == [DOCS, DOCS]


def test_a_damaged_compressed_file_is_named(tmp_path):
    f = tmp_path / "a.jsonl.gz"
    f.write_bytes(gzip.compress(b'{"text": "x"}\n' * 1000)[:-20])
    with pytest.raises(DataError, match=rf"{f}: cannot decompress"):
        _read([f])


def test_parquet_by_row_groups_and_arrow_by_rows(tmp_path):
    table = pa.table({"id": list(range(len(DOCS))), "body": DOCS})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=25)
    units = plan_units([tmp_path / "a.parquet"], 2000)
    assert len(units) > 3 and units[-1].end == 12  # row groups
    assert _read([tmp_path / "a.parquet"], 2000, text_field="body") == DOCS
    # a datasets cache file (Arrow IPC stream), as data=hf and the stdlib corpus give
    ds = datasets.Dataset.from_dict({"text": DOCS}).map(
        lambda b: b, batched=True, cache_file_name=str(tmp_path / "a.arrow")
    )
    arrow = [__import__("pathlib").Path(c["filename"]) for c in ds.cache_files]
    assert len(plan_units(arrow, 3000)) > 3
    assert _read(arrow, 3000) == DOCS


def test_files_globs_and_directories(tmp_path):
    for name in ["b/2.txt", "b/1.jsonl", "b/c/3.txt.zst", "b/notes.md", "d/x.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    rel = lambda paths: [str(p.relative_to(tmp_path)) for p in paths]  # noqa: E731
    assert rel(find_files([str(tmp_path / "b")], "k")) == ["b/1.jsonl", "b/2.txt", "b/c/3.txt.zst"]
    assert rel(find_files([str(tmp_path / "**/*.txt"), str(tmp_path / "b/2.txt")], "k")) == [
        "b/2.txt",
        "d/x.txt",
    ]
    with pytest.raises(ConfigError, match=r"^data.train_files: no file matches .*/\*.parquet$"):
        find_files([str(tmp_path / "*.parquet")], "data.train_files")
    with pytest.raises(ConfigError, match=r"^data.train_files: .*notes.md is not .txt, .jsonl"):
        find_files([str(tmp_path / "b/*")], "data.train_files")
    with pytest.raises(ConfigError, match=r"^k: file not found: .*missing.txt$"):
        find_files([str(tmp_path / "missing.txt")], "k")


def test_bad_bytes_name_the_absolute_offset_or_are_replaced(tmp_path):
    f = tmp_path / "a.txt"
    data = ("\n\n".join(DOCS) + "\n").encode()
    f.write_bytes(data[:9000] + b"\xff" + data[9000:])
    with pytest.raises(
        DataError, match=rf"^{f}:\d+: byte 9000 is not UTF-8 .*decode_errors=replace"
    ):
        _read([f], 1000)
    assert "\ufffd" in "".join(_read([f], 1000, errors="replace"))


def test_bad_records_name_the_line_even_in_a_later_unit(tmp_path):
    f = tmp_path / "a.jsonl"
    lines = [json.dumps({"text": d}) for d in DOCS]
    lines[250] = '{"text": "cut off'
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"^{f}:251: Unterminated string"):
        _read([f], 1000)
    lines[250] = json.dumps({"body": "x"})
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=rf"^{f}:251: no field 'text' \(data.text_field\); fields: body$"
    ):
        _read([f], 1000)


def test_an_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty.txt: the file is empty"):
        plan_units([tmp_path / "empty.txt"], 1000)
