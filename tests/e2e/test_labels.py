"""Labels of task=custom through the CLI: evaluation scores with the model's own labels, and a
row without a label, a misread header or a directory ends in one line naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import FT_TINY, run_cli
from glue_fixtures import write_glue

FT = [
    *FT_TINY,
    "trainer.max_steps=4",
    "trainer.batch_size=8",
    "trainer.log_every=2",
    "trainer.eval_every=2",
    "trainer.save_every=2",
]


def _csv(path: Path, rows: range) -> Path:
    lines = [f"film {i} is {['good', 'bad'][i % 2]},{['pos', 'neg'][i % 2]}" for i in rows]
    path.write_text("text,label\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def pos_neg(tmp_path_factory, cache_dir) -> tuple[Path, Path]:
    """A classifier fine-tuned with task.labels=[pos,neg] (not their sorted order), and its
    validation file."""
    d = tmp_path_factory.mktemp("pos-neg")
    train, dev = _csv(d / "train.csv", range(32)), _csv(d / "dev.csv", range(32, 44))
    run = d / "run"
    args = ["task=custom", f"task.train_file={train}", f"task.validation_file={dev}"]
    result = run_cli(
        ["finetune", *args, "task.labels=[pos,neg]", *FT, f"hydra.run.dir={run}"], cache_dir
    )
    assert result.returncode == 0, result.stderr
    return run, dev


def _evaluate(model: str, args: list[str], out: Path, cache_dir: Path):
    return run_cli(
        ["evaluate", model, *args, "trainer.batch_size=8", f"hydra.run.dir={out}"], cache_dir
    )


def test_evaluate_scores_with_the_models_labels(pos_neg, cache_dir, tmp_path):
    """No training file: the labels and their order are the model's, so evaluate predicts what
    the fine-tune's final evaluation did."""
    run, dev = pos_neg
    out = tmp_path / "eval"
    args = ["task=custom", f"task.validation_file={dev}"]
    result = _evaluate(f"model.from_run={run}", args, out, cache_dir)
    assert result.returncode == 0, result.stderr
    predictions = (out / "predictions" / "validation.tsv").read_text()
    assert predictions == (run / "predictions" / "validation.tsv").read_text()
    assert {line.split("\t")[2] for line in predictions.splitlines()[1:]} == {"pos", "neg"}
    trained = json.loads((run / "summary.json").read_text())
    evaluated = json.loads((out / "summary.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(trained["best_accuracy"])


def test_evaluate_refuses_labels_it_cannot_map(pos_neg, cache_dir, tmp_path):
    run, dev = pos_neg
    sst2 = write_glue(tmp_path / "glue", n_train=4, n_dev=4, only=("sst2",)) / "sst2"
    # A model without label names (transformers' LABEL_0, LABEL_1) on a custom task.
    unnamed = tmp_path / "unnamed"
    shutil.copytree(run / "final", unnamed)
    config = json.loads((unnamed / "config.json").read_text())
    config["id2label"] = {"0": "LABEL_0", "1": "LABEL_1"}
    config["label2id"] = {"LABEL_0": 0, "LABEL_1": 1}
    (unnamed / "config.json").write_text(json.dumps(config))
    cases = [
        (
            f"model.from_run={run}",
            ["task=sst2", f"task.data_dir={sst2}"],
            "the model's labels (pos, neg) are not task=sst2's (negative, positive)",
        ),
        (
            f"model.name_or_path={unnamed}",
            ["task=custom", f"task.validation_file={dev}"],
            "give task.labels in the model's id order or task.train_file",
        ),
    ]
    for model, args, message in cases:
        result = _evaluate(model, args, tmp_path / "run", cache_dir)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("llmtrain evaluate: error: ") and message in line


def test_bad_files_end_in_one_line(cache_dir, tmp_path):
    good = _csv(tmp_path / "good.csv", range(8))
    unlabelled = _csv(tmp_path / "train.csv", range(16))
    with unlabelled.open("a") as f:
        f.write("film 16 is fine,\n")  # line 18
    tabbed = tmp_path / "tabbed.csv"
    tabbed.write_text("text\tlabel\ngood film\tpos\n")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.md").write_text("some text\n")  # a directory is read for its corpus files
    custom = ["finetune", "task=custom", f"task.validation_file={good}", *FT]
    cases = [
        (
            [*custom, f"task.train_file={unlabelled}"],
            f"{unlabelled}:18: no label in column 'label' (task.label_field)",
        ),
        (
            [*custom, f"task.train_file={tabbed}"],
            f"{tabbed}:2: no text field 'text' (task.text_fields); columns found: "
            "'text\\tlabel': the file looks tab-separated (name it .tsv)",
        ),
        (
            ["pretrain", "data=text_files", f"data.train_files=[{corpus}]"],
            f"data.train_files: {corpus} holds no .txt, .jsonl or .parquet (the first two "
            "optionally .gz or .zst) file",
        ),
    ]
    for args, message in cases:
        result = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], cache_dir)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [f"llmtrain {args[0]}: error: {message}"]
