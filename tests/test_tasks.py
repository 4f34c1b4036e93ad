"""Task readers: GLUE's file layouts read right, and bad data named by file and row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from glue_fixtures import write_glue

from llmtrain.config import TaskConfig
from llmtrain.data.tasks import load_task
from llmtrain.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def glue(tmp_path_factory) -> Path:
    return write_glue(tmp_path_factory.mktemp("glue"), n_train=6, n_dev=4)


def _load(tmp_path: Path, **kw):
    return load_task(TaskConfig(**kw), tmp_path)


def test_glue_layouts(glue, tmp_path):
    cola = _load(tmp_path, name="cola", data_dir=str(glue / "cola"))
    assert cola.splits["train"][0]["text_a"].startswith('the "film" number 0')  # quotes kept
    assert cola.splits["train"]["label"][:2] == [1, 0] and cola.labels == [
        "unacceptable",
        "acceptable",
    ]
    mrpc = _load(tmp_path, name="mrpc", data_dir=str(glue / "mrpc"))  # header behind a BOM
    assert mrpc.pair and mrpc.splits["validation"]["label"] == [1, 0, 1, 0]
    mnli = _load(tmp_path, name="mnli", data_dir=str(glue / "mnli"))
    assert mnli.eval_splits == ["validation", "mismatched"] and set(
        mnli.splits["train"]["label"]
    ) == {0, 1, 2}
    assert mnli.splits["test"]["label"] == [-100] * 4
    stsb = _load(tmp_path, name="stsb", data_dir=str(glue / "stsb"))
    assert stsb.regression and stsb.splits["train"]["label"][:2] == [0.5, 4.5]
    sst2 = _load(tmp_path, name="sst2", data_dir=str(glue / "sst2"), max_train_examples=3)
    assert len(sst2.splits["train"]) == 3 and sst2.splits["test"]["index"] == [0, 1, 2, 3]


def _tsv(tmp_path: Path, name: str, content: bytes) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "train.tsv").write_bytes(content)
    (d / "dev.tsv").write_bytes(b"sentence\tlabel\nfine .\t1\n")
    return d


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "train.tsv: the file is empty"),
        (b"text\tlabel\nfine .\t1\n", "train.tsv: no column 'sentence'"),
        (
            b"sentence\tlabel\nfine .\t1\nbad .\t7\n",
            "train.tsv:3: label '7' is not in the label set",
        ),
        (
            b"sentence\tlabel\nfine .\t1\nbad \xff .\t0\n",
            "train.tsv:3: byte 4 of the line is not UTF-8",
        ),
        (
            b"sentence\tlabel\nfine .\t1\nno label here\n",
            "train.tsv:3: 1 columns, expected at least 2",
        ),
    ],
)
def test_bad_glue_files(tmp_path, content, message):
    d = _tsv(tmp_path, "sst2", content)
    with pytest.raises(DataError, match=message):
        _load(tmp_path, name="sst2", data_dir=str(d))


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_bad_custom_files(tmp_path):
    good = _jsonl(
        tmp_path / "good.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    )
    cases = [
        (
            [{"text": "a", "label": "x"}, {"body": "b", "label": "y"}],
            {},
            "bad.jsonl:2: no text field 'text'",
        ),
        ([{"text": "a", "label": "x"}, {"text": "b"}], {}, "bad.jsonl:2: no label field 'label'"),
        (
            [{"text": "a", "label": "z"}],
            {"labels": ["x", "y"]},
            "bad.jsonl:1: label 'z' is not in the label set",
        ),
    ]
    for rows, extra, message in cases:
        bad = _jsonl(tmp_path / "bad.jsonl", rows)
        with pytest.raises(DataError, match=message):
            _load(tmp_path, name="custom", train_file=bad, validation_file=good, **extra)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        _load(tmp_path, name="custom", train_file=str(tmp_path / "empty.csv"), validation_file=good)
    with pytest.raises(ConfigError, match="task.num_labels=3"):
        _load(tmp_path, name="custom", train_file=good, validation_file=good, num_labels=3)
    with pytest.raises(ConfigError, match="not one of"):
        _load(tmp_path, name="sst5")


def test_bad_data_is_one_line_from_the_cli(cache_dir, tmp_path):
    d = _tsv(tmp_path, "sst2", b"sentence\tlabel\nfine .\t1\nbad .\tmaybe\n")
    result = run_cli(
        ["finetune", "task=sst2", f"task.data_dir={d}", f"hydra.run.dir={tmp_path / 'run'}"],
        cache_dir,
    )
    assert result.returncode == 2
    where = d / "train.tsv"
    assert result.stderr.strip().splitlines() == [
        f"llmtrain finetune: error: {where}:3: "
        "label 'maybe' is not in the label set (negative, positive)"
    ]
