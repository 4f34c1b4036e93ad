"""llmtrain.tasks.glue: GLUE's file layouts read right, and bad GLUE files named by file and row."""

from __future__ import annotations

import pytest
from glue_fixtures import load_task, tsv_dir

from llmtrain.errors import DataError


def test_glue_layouts(glue, tmp_path):
    cola = load_task(tmp_path, name="cola", data_dir=str(glue / "cola"))
    assert cola.splits["train"][0]["text_a"].startswith('the "film" number 0')  # quotes kept
    assert cola.splits["train"]["label"][:2] == [1, 0] and cola.labels == [
        "unacceptable",
        "acceptable",
    ]
    mrpc = load_task(tmp_path, name="mrpc", data_dir=str(glue / "mrpc"))  # header behind a BOM
    assert mrpc.pair and mrpc.splits["validation"]["label"] == [1, 0, 1, 0]
    mnli = load_task(tmp_path, name="mnli", data_dir=str(glue / "mnli"))
    assert mnli.eval_splits == ["validation", "mismatched"] and set(
        mnli.splits["train"]["label"]
    ) == {0, 1, 2}
    assert mnli.splits["test"]["label"] == [-100] * 4
    stsb = load_task(tmp_path, name="stsb", data_dir=str(glue / "stsb"))
    assert stsb.regression and stsb.splits["train"]["label"][:2] == [0.5, 4.5]
    sst2 = load_task(tmp_path, name="sst2", data_dir=str(glue / "sst2"), max_train_examples=3)
    assert len(sst2.splits["train"]) == 3 and sst2.splits["test"]["index"] == [0, 1, 2, 3]


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
    d = tsv_dir(tmp_path, "sst2", content)
    with pytest.raises(DataError, match=message):
        load_task(tmp_path, name="sst2", data_dir=str(d))
