"""llmtrain.tasks.classification on labelled files: custom files, rows without a label or text,
test-file labels, missing columns, directories, and the model's own labels at evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from glue_fixtures import load_task

from llmtrain import tasks
from llmtrain.errors import ConfigError, DataError
from llmtrain.tasks.classification import ClassificationConfig


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
            load_task(tmp_path, name="custom", train_file=bad, validation_file=good, **extra)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        load_task(
            tmp_path, name="custom", train_file=str(tmp_path / "empty.csv"), validation_file=good
        )
    with pytest.raises(ConfigError, match="task.num_labels=3"):
        load_task(tmp_path, name="custom", train_file=good, validation_file=good, num_labels=3)
    with pytest.raises(ConfigError, match="not one of"):
        load_task(tmp_path, name="sst5")


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


GOOD_CSV = "text,label\ngood film,pos\nbad film,neg\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("train.csv", GOOD_CSV + "fine film,\n", "train.csv:4: no label in column 'label'"),
        ("train.csv", GOOD_CSV + "fine film\n", "train.csv:4: no label in column 'label'"),
        ("train.jsonl", '{"text": "a", "label": null}\n', "train.jsonl:1: no label in column"),
        ("train.jsonl", '{"text": null, "label": "x"}\n', "train.jsonl:1: no text in column"),
    ],
)
def test_a_row_without_a_label_or_text_is_an_error(tmp_path, name, text, message):
    """A blank or missing label names no class: not a third class "" or "None"."""
    bad, good = _write(tmp_path, name, text), _write(tmp_path, "dev.csv", GOOD_CSV)
    for train, dev in ((bad, good), (good, bad)):
        with pytest.raises(DataError, match=message):
            load_task(tmp_path, name="custom", train_file=train, validation_file=dev)


def test_test_file_labels_are_read_only_when_every_row_has_one(tmp_path):
    good = _write(tmp_path, "train.csv", GOOD_CSV)
    some = _write(tmp_path, "some.csv", "text,label\nnew film,pos\nold film,\n")
    task = load_task(tmp_path, name="custom", train_file=good, validation_file=good, test_file=some)
    assert task.labels == ["neg", "pos"] and task.splits["test"]["label"] == [-100, -100]
    task = load_task(tmp_path, name="custom", train_file=good, validation_file=good, test_file=good)
    assert task.splits["test"]["label"] == [1, 0]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("text\tlabel\ngood film\tpos\n", r"columns found: 'text\\tlabel': the file looks tab"),
        ("good film,pos\nbad film,neg\n", r"columns found: 'good film', 'pos' \(the first row is"),
    ],
)
def test_a_missing_text_column_lists_the_columns_found(tmp_path, text, found):
    bad = _write(tmp_path, "train.csv", text)
    with pytest.raises(DataError, match=f"train.csv:2: no text field 'text'.*; {found}"):
        load_task(tmp_path, name="custom", train_file=bad, validation_file=bad)


def test_a_directory_is_not_a_file(tmp_path):
    from llmtrain.data.files import read_lines, read_records
    from llmtrain.tasks.squad import read_squad
    from llmtrain.tasks.tagging import TaggingConfig, read_sentences

    d = tmp_path / "data.csv"
    d.mkdir()
    readers = [
        lambda: read_lines(d),
        lambda: read_records(d),
        lambda: read_sentences(d, TaggingConfig()),
        lambda: read_squad(d, v2=False),
        lambda: load_task(tmp_path, name="custom", train_file=str(d), validation_file=str(d)),
    ]
    for read in readers:
        with pytest.raises(ConfigError, match=f"^{re.escape(str(d))} is a directory, not a file$"):
            read()


def _evaluated(tmp_path: Path, model_labels: list[str], **kw):
    cfg = ClassificationConfig(**kw)
    return tasks.load(cfg, tmp_path, training=False, model_labels=model_labels).data


def test_evaluation_takes_the_models_labels(glue, tmp_path):
    dev = _write(tmp_path, "dev.csv", GOOD_CSV)
    # No training file needed, and the model's order, not the sorted one.
    task = _evaluated(tmp_path, ["pos", "neg"], name="custom", validation_file=dev)
    assert task.labels == ["pos", "neg"] and task.splits["validation"]["label"] == [0, 1]
    with pytest.raises(ConfigError, match=r"task.labels=\[neg,pos\] .* model's labels \[pos,neg\]"):
        _evaluated(
            tmp_path, ["pos", "neg"], name="custom", validation_file=dev, labels=["neg", "pos"]
        )
    # Transformers' default names say nothing: the labels come from the config or training file.
    unnamed = ["LABEL_0", "LABEL_1"]
    with pytest.raises(ConfigError, match="task.labels .* or task.train_file"):
        _evaluated(tmp_path, unnamed, name="custom", validation_file=dev)
    task = _evaluated(tmp_path, unnamed, name="custom", validation_file=dev, train_file=dev)
    assert task.labels == ["neg", "pos"]
    sst2 = str(glue / "sst2")
    assert _evaluated(tmp_path, ["NEGATIVE", "POSITIVE"], name="sst2", data_dir=sst2).labels == [
        "negative",
        "positive",
    ]
    mnli = ["entailment", "neutral", "contradiction"]
    with pytest.raises(
        ConfigError,
        match=r"\(entailment, neutral, contradiction\).*task=sst2.*\(negative, positive\)",
    ):
        _evaluated(tmp_path, mnli, name="sst2", data_dir=sst2)
