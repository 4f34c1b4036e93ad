"""`llmtrain glue`: a suite over tasks in GLUE's own layout, its tables, a missing task, and a
suite killed half-way that continues without redoing the finished task."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FT_TINY, cli_env, read_metrics, run_cli
from glue_fixtures import write_glue
from sklearn.metrics import matthews_corrcoef

TASKS = ["cola", "stsb", "mnli", "rte"]  # rte's files are not written: a missing task
SUITE = [
    "glue",
    f"glue.tasks=[{','.join(TASKS)}]",
    *FT_TINY,
    "trainer.max_steps=8",
    "trainer.batch_size=8",
    "trainer.log_every=1",
    "trainer.eval_every=4",
    "trainer.save_every=3",
]


def _fingerprint(run: Path) -> dict[str, object]:
    """What retraining would change: the summary, the metrics log, the weights' bytes/mtime."""
    weights = run / "final" / "model.safetensors"
    return {
        "summary": (run / "summary.json").read_text(),
        "metrics": (run / "metrics.jsonl").read_text(),
        "weights": (weights.read_bytes(), weights.stat().st_mtime_ns),
    }


@pytest.fixture(scope="module")
def suite(tmp_path_factory, cache_dir):
    """A suite killed (SIGKILL) while training its second task, then rerun to the end."""
    root = tmp_path_factory.mktemp("glue-suite")
    data = write_glue(root / "glue_data", only=("cola", "stsb", "mnli"), glue_names=True)
    run = root / "suite"
    args = [*SUITE, f"glue.data_dir={data}", f"hydra.run.dir={run}"]
    killed = subprocess.Popen(
        [sys.executable, "-m", "llmtrain", *args],
        env=cli_env(cache_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    second = run / "stsb" / "metrics.jsonl"
    while killed.poll() is None:  # kill after stsb's step 4 (its step-3 checkpoint is written)
        rows = [json.loads(x) for x in second.read_text().splitlines()] if second.exists() else []
        if any(r["split"] == "train" and r["step"] >= 4 for r in rows):
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    killed.wait(timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.read()[-3000:]
    first = _fingerprint(run / "cola")
    assert not (run / "stsb" / "summary.json").exists()
    rerun = run_cli(args, cache_dir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return run, first, rerun.stdout


def test_rerun_continues_without_redoing_finished_tasks(suite):
    run, first, stdout = suite
    assert _fingerprint(run / "cola") == first  # not retrained: same weights, log and summary
    assert "cola finished in an earlier run: not rerun" in stdout
    # The interrupted task continued from its checkpoint, and its log has each step once.
    assert f"resuming from {run / 'stsb' / 'checkpoints' / 'step-3'} (step 3)" in stdout
    steps = [r["step"] for r in read_metrics(run / "stsb") if r["split"] == "train"]
    assert steps == list(range(1, 9))


def test_tables_hold_each_tasks_official_score(suite):
    run, _, _ = suite
    table = json.loads((run / "glue.json").read_text())
    rows = {r["task"]: r for r in table["tasks"]}
    assert list(rows) == TASKS
    summaries = {t: json.loads((run / t / "summary.json").read_text()) for t in TASKS[:3]}
    official = {
        "cola": summaries["cola"]["best_mcc"],
        "stsb": (summaries["stsb"]["best_pearson"] + summaries["stsb"]["best_spearman"]) / 2,
        "mnli": (summaries["mnli"]["best_accuracy"] + summaries["mnli"]["best_mismatched_accuracy"])
        / 2,
    }
    # CoLA's MCC is the one scikit-learn computes from the task's predictions/.
    lines = (run / "cola" / "predictions" / "validation.tsv").read_text().splitlines()[1:]
    preds, refs = zip(*[(int(x.split("\t")[1]), int(x.split("\t")[2])) for x in lines], strict=True)
    assert official["cola"] == pytest.approx(matthews_corrcoef(refs, preds), abs=1e-12)
    markdown = (run / "glue.md").read_text()
    for task, score in official.items():
        assert rows[task]["status"] == "done"
        assert rows[task]["score"] == pytest.approx(score, abs=1e-12)
        assert rows[task]["steps"] == summaries[task]["steps"] == 8
        assert rows[task]["train_seconds"] == summaries[task]["train_seconds"]
        assert f"| {task} | {rows[task]['metric']} | {score:.4f} |" in markdown
    average = sum(official.values()) / 3
    assert table["average"] == pytest.approx(average, abs=1e-12)
    assert table["tasks_averaged"] == ["cola", "stsb", "mnli"]
    assert f"| **GLUE average** (3 of 4 tasks) | | {average:.4f} |" in markdown


def test_missing_task_is_a_row_and_the_others_run(suite):
    run, _, stdout = suite
    rows = json.loads((run / "glue.json").read_text())["tasks"]
    rte = next(r for r in rows if r["task"] == "rte")
    assert rte["status"] == "missing" and "RTE/train.tsv" in rte["reason"]
    assert "| rte | missing |" in (run / "glue.md").read_text()
    assert not (run / "rte").exists()
    assert "rte: missing train.tsv, dev.tsv" in stdout
