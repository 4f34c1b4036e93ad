"""llmtrain.commands.report in-process: the table and PNG plots of a finished run and of runs in
progress, a run killed before it logged, and its mistakes as config errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report_fixtures import assert_png, held, table_rows

from llmtrain.commands import report as report_command
from llmtrain.comparison import find_runs, sort_runs
from llmtrain.errors import ConfigError


def test_report_on_a_finished_run(mlm_run, tmp_path, capsys):
    out = tmp_path / "report"
    report_command.main([str(mlm_run), "--out", str(out)])
    printed = capsys.readouterr().out
    summary = json.loads((mlm_run / "summary.json").read_text())
    (row,) = table_rows(printed)
    assert row[0] == "run" and row[2] == "finished" and row[3] == "loss"
    assert row[4] == f"{summary['loss']:.4g}" and row[8] == f"{summary['tokens']:,}"
    assert "objective=mlm" in row[1]
    assert (out / "report.md").read_text() in printed
    assert_png(out / "loss.png")
    assert f"report: {out}/" in printed


def _fake_finetune(path: Path, accuracies: list[float], finished: bool) -> None:
    """A fine-tuning run as it writes itself: overrides, eval rows with a task metric and,
    once finished, summary.json."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(f"- trainer.lr={accuracies[-1]}\n")
    rows = []
    for i, acc in enumerate(accuracies):
        rows.append({"step": 10 * i, "split": "train", "loss": 1.0 / (i + 1), "tokens": 100 * i})
        rows.append({"step": 10 * i, "split": "eval", "loss": 0.7, "accuracy": acc})
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if not finished:
        text += '{"step": 99, "split": "tr'  # a row being written at this moment
    (path / "metrics.jsonl").write_text(text)
    if finished:
        summary = {"main_metric": "accuracy", "best_accuracy": max(accuracies), "steps": 20}
        (path / "summary.json").write_text(json.dumps(summary))


def test_report_on_runs_in_progress_ranks_by_the_task_metric(tmp_path, capsys):
    _fake_finetune(tmp_path / "a", [0.5, 0.9, 0.6], finished=True)
    _fake_finetune(tmp_path / "b", [0.5, 0.7], finished=False)
    _fake_finetune(tmp_path / "c", [0.5, 0.95], finished=False)
    with held(tmp_path / "b"), held(tmp_path / "c"):
        runs = sort_runs(find_runs([str(tmp_path)]))
    assert [(r.label, r.metric, r.value) for r in runs] == [
        ("c", "accuracy", 0.95),
        ("a", "accuracy", 0.9),
        ("b", "accuracy", 0.7),
    ]
    assert [r.status for r in runs] == ["running (step 10)", "finished", "running (step 10)"]
    report_command.main([str(tmp_path)])
    assert_png(tmp_path / "report" / "loss.png")
    assert_png(tmp_path / "report" / "accuracy.png")


def test_report_mistakes_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        report_command.main([str(tmp_path / "missing")])
    with pytest.raises(ConfigError, match="no llmtrain runs"):
        report_command.main([str(tmp_path)])


def test_report_of_a_run_killed_before_it_logged(mlm_run, tmp_path, capsys):
    started = tmp_path / "started"
    shutil.copytree(mlm_run / ".hydra", started / ".hydra")
    report_command.main([str(started)])
    (row,) = table_rows(capsys.readouterr().out)
    assert row[2] == "interrupted" and row[4] == "–"  # no process holds it, none ended it
