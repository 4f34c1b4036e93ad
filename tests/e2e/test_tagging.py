"""Token classification through the CLI: a `task=ner` run end to end whose scores equal
seqeval's on its own prediction file, its final/ in a pipeline, and evaluate reproducing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FT_TINY, cli_summary, read_metrics, run_cli
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from span_fixtures import LONG, sentence, write_conll


@pytest.fixture(scope="module")
def ner_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ner")
    write_conll(d / "train.conll", [sentence(i) for i in range(40)] + [LONG])
    write_conll(d / "dev.conll", [sentence(i) for i in range(40, 52)])
    return d


@pytest.fixture(scope="module")
def ner_run(ner_files, cache_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("ner-run") / "run"
    args = [
        "finetune",
        "task=ner",
        f"task.train_file={ner_files / 'train.conll'}",
        f"task.validation_file={ner_files / 'dev.conll'}",
        "task.max_length=32",
        *FT_TINY,
        "trainer.lr=3e-3",
        "trainer.max_steps=12",
        "trainer.batch_size=8",
        "trainer.log_every=4",
        "trainer.eval_every=6",
        "trainer.save_every=12",
    ]
    result = run_cli([*args, f"hydra.run.dir={run}"], cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run, result.stdout


def _read_conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    gold, pred = [], []
    for block in path.read_text().strip().split("\n\n"):
        rows = [line.split(" ") for line in block.splitlines()]
        gold.append([r[1] for r in rows])
        pred.append([r[2] for r in rows])
    return gold, pred


def test_ner_run_end_to_end(ner_run):
    run, stdout = ner_run
    assert "warning: 1 of 41 train sentences are longer than task.max_length=32" in stdout
    evals = [r for r in read_metrics(run) if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [0, 6, 12]
    assert evals[-1]["loss"] < evals[0]["loss"]  # it learns
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "ner" and summary["main_metric"] == "f1"
    # The reported scores are seqeval's (strict IOB2) on the written predictions.
    gold, pred = _read_conll(run / "predictions" / "validation.conll")
    assert len(gold) == 12 and gold[0] == [t for _, t in sentence(40)]
    for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        expected = fn(gold, pred, mode="strict", scheme=IOB2, zero_division=0)
        assert summary[f"best_{name}"] == pytest.approx(expected, abs=1e-12), name
    words = [(g, p) for gs, ps in zip(gold, pred, strict=True) for g, p in zip(gs, ps, strict=True)]
    assert summary["best_accuracy"] == pytest.approx(sum(g == p for g, p in words) / len(words))


def test_ner_final_reloads_in_a_pipeline(ner_run):
    from transformers import AutoModelForTokenClassification, pipeline

    run, _ = ner_run
    model = AutoModelForTokenClassification.from_pretrained(run / "final")
    assert list(model.config.id2label.values()) == [
        "B-LOC",
        "B-ORG",
        "B-PER",
        "I-LOC",
        "I-ORG",
        "I-PER",
        "O",
    ]
    tagged = pipeline("token-classification", model=str(run / "final"))("Mary lives in Berlin .")
    assert all(t["entity"] in model.config.label2id for t in tagged)


def test_evaluate_reproduces_the_ner_run(ner_run, ner_files, cache_dir, tmp_path):
    run, _ = ner_run
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "task=ner",
        f"task.validation_file={ner_files / 'dev.conll'}",
        "task.max_length=32",
        f"model.from_run={run}",
        "trainer.batch_size=8",
    ]
    evaluated = cli_summary(args, out, cache_dir)
    trained = json.loads((run / "summary.json").read_text())
    for key in ("f1", "precision", "recall", "accuracy", "loss"):
        assert evaluated[key] == pytest.approx(trained[f"best_{key}"]), key
    assert (out / "predictions" / "validation.conll").read_text() == (
        run / "predictions" / "validation.conll"
    ).read_text()
