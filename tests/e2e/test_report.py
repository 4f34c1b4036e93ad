"""`llmtrain report` through the CLI: a sweep sorted by loss, and how each run ended."""

from __future__ import annotations

import json

from conftest import run_cli
from report_fixtures import assert_png, fake_run, held, run_statuses, table_rows


def test_report_on_a_sweep_sorts_by_loss(tiny_sweep, cache_dir):
    result = run_cli(["report", str(tiny_sweep)], cache_dir)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    losses = {
        job: json.loads((tiny_sweep / job / "summary.json").read_text())["loss"]
        for job in ("0", "1")
    }
    assert [r[0] for r in rows] == sorted(losses, key=losses.get)  # best (lowest) first
    assert {r[1] for r in rows} == {"`trainer.lr=0.001`", "`trainer.lr=0.0003`"}
    assert "common overrides: `" in result.stdout  # the settings both jobs share, once
    assert_png(tiny_sweep / "report" / "loss.png")
    # the table printed at the end of the sweep is the report's
    assert (tiny_sweep / "sweep.md").read_text() == (
        tiny_sweep / "report" / "report.md"
    ).read_text()


def test_report_shows_how_each_run_ended(tmp_path, cache_dir):
    done = {"loss": 2.0, "steps": 10, "last_eval_finite": True}
    fake_run(tmp_path / "finished", [5, 10], summary=done)
    diverged = {"loss": None, "steps": 10, "last_eval_finite": False}
    failed_too = {"status": "failed", "step": 10, "reason": "the last evaluation is not finite"}
    fake_run(tmp_path / "diverged", [5, 10], summary=diverged, status=failed_too)
    fake_run(tmp_path / "stopped", [5], status={"status": "stopped", "step": 5, "reason": "SIGINT"})
    fake_run(tmp_path / "failed", [5, 7], status={"status": "failed", "step": 7, "reason": "OOM"})
    fake_run(tmp_path / "killed", [5, 15])  # SIGKILL, or the machine went down: nothing said so
    fake_run(tmp_path / "running", [5, 20])
    with held(tmp_path / "running"):
        result = run_cli(["report", str(tmp_path)], cache_dir)
    assert result.returncode == 0, result.stderr
    assert {r[0]: r[2] for r in table_rows(result.stdout)} == {
        "finished": "finished",
        "diverged": "diverged",
        "stopped": "stopped (step 5)",
        "failed": "failed (step 7)",
        "killed": "interrupted (step 15)",
        "running": "running (step 20)",
    }
    # the lock is the kernel's: once its holder is gone, the run is no longer running
    assert run_statuses(tmp_path)["running"] == "interrupted (step 20)"
