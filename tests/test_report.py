"""`llmtrain report`: a table of runs sorted by main metric, and PNG plots, for a finished run,
a sweep, and runs still in progress."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY, run_cli

from llmtrain import comparison
from llmtrain.commands import report as report_command
from llmtrain.comparison import find_runs, sort_runs
from llmtrain.errors import ConfigError

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


def test_report_on_a_finished_run(mlm_run, tmp_path, capsys):
    out = tmp_path / "report"
    report_command.main([str(mlm_run), "--out", str(out)])
    printed = capsys.readouterr().out
    summary = json.loads((mlm_run / "summary.json").read_text())
    (row,) = _table_rows(printed)
    assert row[0] == "run" and row[2] == "finished" and row[3] == "loss"
    assert row[4] == f"{summary['loss']:.4g}" and row[8] == f"{summary['tokens']:,}"
    assert "objective=mlm" in row[1]
    assert (out / "report.md").read_text() in printed
    _assert_png(out / "loss.png")
    assert f"report: {out}/" in printed


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
    with _held(tmp_path / "b"), _held(tmp_path / "c"):
        runs = sort_runs(find_runs([str(tmp_path)]))
    assert [(r.label, r.metric, r.value) for r in runs] == [
        ("c", "accuracy", 0.95),
        ("a", "accuracy", 0.9),
        ("b", "accuracy", 0.7),
    ]
    assert [r.status for r in runs] == ["running (step 10)", "finished", "running (step 10)"]
    report_command.main([str(tmp_path)])
    _assert_png(tmp_path / "report" / "loss.png")
    _assert_png(tmp_path / "report" / "accuracy.png")


def test_report_mistakes_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        report_command.main([str(tmp_path / "missing")])
    with pytest.raises(ConfigError, match="no llmtrain runs"):
        report_command.main([str(tmp_path)])


def test_report_of_a_run_killed_before_it_logged(mlm_run, tmp_path, capsys):
    started = tmp_path / "started"
    shutil.copytree(mlm_run / ".hydra", started / ".hydra")
    report_command.main([str(started)])
    (row,) = _table_rows(capsys.readouterr().out)
    assert row[2] == "interrupted" and row[4] == "–"  # no process holds it, none ended it


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


def test_report_status_of_a_finished_run_trained_further(tmp_path):
    """A finished run given more steps continues in its directory: the summary of the shorter
    run stays until the longer one finishes, and what happened since is what counts."""
    done = {"loss": 2.0, "steps": 10, "last_eval_finite": True}
    _run(tmp_path / "again", [10, 20], summary=done)
    _run(tmp_path / "stopped", [10, 20], summary=done, status={"status": "stopped", "step": 20})
    _run(tmp_path / "at-once", [10], summary=done, status={"status": "failed", "step": 10})
    diverged = {"steps": 10, "last_eval_finite": False}
    _run(tmp_path / "diverged", [10], summary=diverged, status={"status": "stopped", "step": 10})
    _run(tmp_path / "running", [10], summary=done)
    with _held(tmp_path / "running"):
        statuses = _statuses(tmp_path)
    assert statuses == {
        "again": "interrupted (step 20)",
        "stopped": "stopped (step 20)",
        "at-once": "failed (step 10)",
        "diverged": "stopped (step 10)",
        "running": "running (step 10)",
    }
    (again,) = (r for r in find_runs([str(tmp_path)]) if r.label == "again")
    assert again.value is None  # not the shorter run's loss


def _plotted_labels(runs, out: Path, monkeypatch) -> list[list[str]]:
    """The legend labels of each axes `plot` draws."""
    seen: list[list[str]] = []
    save = comparison._save

    def record(fig, path):
        seen.extend(ax.get_legend_handles_labels()[1] for ax in fig.axes)
        return save(fig, path)

    monkeypatch.setattr(comparison, "_save", record)
    comparison.plot(runs, out)
    return seen


def test_plot_legends_are_unique_and_show_what_differs(tmp_path, monkeypatch):
    name = "gpt2-small-openwebtext-lr3e-4-warmup2000-cosine-bs512-dropout0.1-seed"
    shards = "data.train_file=/data/corpora/openwebtext/shards/2026-11-26/part-"
    for i in (1, 2):
        _run(tmp_path / f"{name}{i}", [5, 10], (f"{shards}{i}.txt", f"trainer.seed={i}"))
    runs = find_runs([str(tmp_path)])
    for labels in _plotted_labels(runs, tmp_path, monkeypatch)[:1]:  # train loss
        assert len(set(labels)) == len(labels) == 2
        for i, label in zip((1, 2), labels, strict=True):
            assert label.startswith(f"{name}{i} ")  # the run, as the table names it
            assert label.endswith(f" train_file=…/part-{i}.txt seed={i}")


def test_legend_labels_shorten_the_overrides(tmp_path):
    _run(tmp_path / "0", [5], ("trainer.lr=0.001", "model.hidden_size=64", "optimizer.lr=1"))
    _run(tmp_path / "1", [5], ("trainer.lr=0.0003", "model.hidden_size=128", "optimizer.lr=1"))
    _run(tmp_path / "2", [5], ("trainer.lr=0.0003", "model.hidden_size=64", "+trainer.x.y=z"))
    runs = find_runs([str(tmp_path)])
    # keys by their last part where that names one setting (two settings end in .lr)
    assert comparison.legend_labels(runs) == [
        "0 trainer.lr=0.001 hidden_size=64 optimizer.lr=1",
        "1 trainer.lr=0.0003 hidden_size=128 optimizer.lr=1",
        "2 trainer.lr=0.0003 hidden_size=64 +y=z",
    ]


def test_legend_labels_stay_short_where_many_overrides_differ(tmp_path):
    tiny = [o.replace("=", "=1") for o in TINY]  # a dozen overrides, none common
    _run(tmp_path / "a", [5], ("trainer.seed=1", *tiny))
    _run(tmp_path / "b", [5], ("trainer.seed=2",))
    a, b = comparison.legend_labels(find_runs([str(tmp_path)]))
    assert a == "a seed=1 vocab_size=12000 hidden_size=164 …"  # whole overrides, 60 chars
    assert b == "b seed=2"
    (run,) = find_runs([str(tmp_path / "a")])  # one run: all its overrides are shown
    assert comparison.legend_labels([run]) == [a]


def test_report_of_one_directory_given_two_ways(tmp_path, monkeypatch):
    _run(tmp_path / "runs" / "a", [5])
    _run(tmp_path / "runs" / "b", [5])
    monkeypatch.chdir(tmp_path)
    runs = find_runs(["runs", str(tmp_path / "runs"), "runs/../runs/a"])
    assert sorted(r.label for r in runs) == ["a", "b"]
