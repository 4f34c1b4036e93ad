"""llmtrain.data.sources: text, JSONL, Parquet and HF sources, the seeded hold-out, undecodable
bytes, and bad files named."""

from __future__ import annotations

import json

import datasets
import pytest
from conftest import PARAGRAPHS

from llmtrain.config import DataConfig, Source
from llmtrain.data.sources import load_corpus
from llmtrain.errors import ConfigError, DataError


def _cfg(tmp_path, **kw) -> DataConfig:
    return DataConfig(source=Source.text_files, cache_dir=str(tmp_path / "cache"), **kw)


def test_txt_blank_lines_separate_documents(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("\n\n".join(PARAGRAPHS) + "\n")
    corpus = load_corpus(_cfg(tmp_path, train_files=[str(f)], validation_fraction=0.1), seed=0)
    assert len(corpus["train"]) == 36 and len(corpus["validation"]) == 4
    texts = set(corpus["train"]["text"]) | set(corpus["validation"]["text"])
    assert {t.strip() for t in texts} == set(PARAGRAPHS)


def test_jsonl_and_parquet_with_a_text_field(tmp_path):
    rows = [{"body": p, "id": i} for i, p in enumerate(PARAGRAPHS)]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parquet = tmp_path / "b.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(parquet))
    for f in (jsonl, parquet):
        corpus = load_corpus(
            _cfg(tmp_path, train_files=[str(f)], validation_files=[str(f)], text_field="body"),
            seed=0,
        )
        assert corpus["train"].column_names == ["text"] and len(corpus["train"]) == 40
        assert len(corpus["validation"]) == 40


def test_hf_source_loads_a_local_dataset_directory(tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    (d / "train.jsonl").write_text("".join(json.dumps({"text": p}) + "\n" for p in PARAGRAPHS))
    (d / "validation.jsonl").write_text(
        "".join(json.dumps({"text": p}) + "\n" for p in PARAGRAPHS[:5])
    )
    cfg = DataConfig(
        source=Source.hf, name=str(d), validation_split="validation", cache_dir=str(tmp_path / "c")
    )
    corpus = load_corpus(cfg, seed=0)
    assert len(corpus["train"]) == 40 and len(corpus["validation"]) == 5
    with pytest.raises(ConfigError, match="data.validation_split=dev"):
        load_corpus(
            DataConfig(
                source=Source.hf, name=str(d), validation_split="dev", cache_dir=str(tmp_path / "c")
            ),
            seed=0,
        )


def test_hold_out_is_seeded(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("\n\n".join(PARAGRAPHS))

    def pick(seed: int) -> list[str]:
        return load_corpus(_cfg(tmp_path, train_files=[str(f)]), seed)["validation"]["text"]

    assert pick(1) == pick(1) and pick(1) != pick(2)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("", "empty.txt", "the file is empty"),
        ("\n\n  \n", "blank.txt", "holds no text"),
        ('{"other": "x"}\n{"other": "y"}\n', "a.jsonl", "no column 'text'"),
        ("one lonely document", "one.txt", "too few to hold out"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, content, name, message):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises((DataError, ConfigError), match=message):
        load_corpus(_cfg(tmp_path, train_files=[str(f)]), seed=0)


def test_mixed_file_types_are_refused(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ConfigError, match="mixes file types"):
        load_corpus(
            _cfg(tmp_path, train_files=[str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")]), seed=0
        )


def test_a_directory_is_not_a_file(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("b.txt", "a.txt", "notes.md"):
        (corpus / name).write_text("some text\n")
    for key in ("train_files", "validation_files"):
        cfg = _cfg(tmp_path, **{"train_files": [str(corpus / "a.txt")], key: [str(corpus)]})
        with pytest.raises(ConfigError) as e:
            load_corpus(cfg, seed=0)
        assert str(e.value) == (
            f"data.{key}: {corpus} is a directory, not a file; name the files in it: "
            f"data.{key}=[{corpus}/a.txt,{corpus}/b.txt]"
        )


def test_undecodable_bytes_can_be_replaced(cache_dir, tmp_path):
    from llmtrain.config import DataConfig, DecodeErrors, Source
    from llmtrain.data.sources import load_corpus

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"first document\n\nsecond \xff document\n\nthird one\n")
    cfg = DataConfig(
        source=Source.text_files,
        train_files=[str(bad)],
        cache_dir=str(cache_dir),
        decode_errors=DecodeErrors.replace,
        validation_fraction=0.34,
    )
    corpus = load_corpus(cfg, seed=0)
    texts = list(corpus["train"]["text"]) + list(corpus["validation"]["text"])
    assert any("second \ufffd document" in t for t in texts)
