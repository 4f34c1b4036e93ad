"""`llmtrain report` through the CLI: a sweep sorted by loss, and how each run ended."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from conftest import run_cli

from llmtrain.comparison import find_runs

PNG = b"\x89PNG\r\n\x1a\n"


def _table_rows(text: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row] for row in rows[1:]]  # without the heading


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000, path  # an image with axes and lines


def _run(
    path: Path,
    steps: list[int],
    overrides: tuple[str, ...] = (),
    summary: dict | None = None,
    status: dict | None = None,
) -> Path:
    """A run directory as llmtrain writes it: overrides, a train row per step and, as the run
    ended, summary.json and/or status.json."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    rows = [{"step": s, "split": "train", "loss": 1.0 / (s + 1)} for s in steps]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))
    if status is not None:
        (path / "status.json").write_text(json.dumps(status))
    return path


@contextlib.contextmanager
def _held(path: Path) -> Iterator[None]:
    """Hold the run directory as a live run does (llmtrain.rundir.claimed): flock on .lock."""
    with open(path / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps({"host": "here", "pid": os.getpid(), "since": "now"}))
        f.flush()
        yield


def _statuses(tmp_path: Path) -> dict[str, str]:
    return {r.label: r.status for r in find_runs([str(tmp_path)])}


def test_report_on_a_sweep_sorts_by_loss(tiny_sweep, cache_dir):
    result = run_cli(["report", str(tiny_sweep)], cache_dir)
    assert result.returncode == 0, result.stderr
    rows = _table_rows(result.stdout)
    losses = {
        job: json.loads((tiny_sweep / job / "summary.json").read_text())["loss"]
        for job in ("0", "1")
    }
    assert [r[0] for r in rows] == sorted(losses, key=losses.get)  # best (lowest) first
    assert {r[1] for r in rows} == {"`trainer.lr=0.001`", "`trainer.lr=0.0003`"}
    assert "common overrides: `" in result.stdout  # the settings both jobs share, once
    _assert_png(tiny_sweep / "report" / "loss.png")
    # the table printed at the end of the sweep is the report's
    assert (tiny_sweep / "sweep.md").read_text() == (
        tiny_sweep / "report" / "report.md"
    ).read_text()


def test_report_shows_how_each_run_ended(tmp_path, cache_dir):
    done = {"loss": 2.0, "steps": 10, "last_eval_finite": True}
    _run(tmp_path / "finished", [5, 10], summary=done)
    diverged = {"loss": None, "steps": 10, "last_eval_finite": False}
    failed_too = {"status": "failed", "step": 10, "reason": "the last evaluation is not finite"}
    _run(tmp_path / "diverged", [5, 10], summary=diverged, status=failed_too)
    _run(tmp_path / "stopped", [5], status={"status": "stopped", "step": 5, "reason": "SIGINT"})
    _run(tmp_path / "failed", [5, 7], status={"status": "failed", "step": 7, "reason": "OOM"})
    _run(tmp_path / "killed", [5, 15])  # SIGKILL, or the machine went down: nothing said so
    _run(tmp_path / "running", [5, 20])
    with _held(tmp_path / "running"):
        result = run_cli(["report", str(tmp_path)], cache_dir)
    assert result.returncode == 0, result.stderr
    assert {r[0]: r[2] for r in _table_rows(result.stdout)} == {
        "finished": "finished",
        "diverged": "diverged",
        "stopped": "stopped (step 5)",
        "failed": "failed (step 7)",
        "killed": "interrupted (step 15)",
        "running": "running (step 20)",
    }
    # the lock is the kernel's: once its holder is gone, the run is no longer running
    assert _statuses(tmp_path)["running"] == "interrupted (step 20)"
