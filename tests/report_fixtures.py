"""Run directories as llmtrain leaves them, held as a live run holds them, and readers of what
`llmtrain report` prints and plots (shared by the report and comparison tests)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n"


def table_rows(text: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row] for row in rows[1:]]  # without the heading


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000, path  # an image with axes and lines


def fake_run(
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
def held(path: Path) -> Iterator[None]:
    """Hold the run directory as a live run does (llmtrain.rundir.claimed): flock on .lock."""
    with open(path / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps({"host": "here", "pid": os.getpid(), "since": "now"}))
        f.flush()
        yield


def run_statuses(tmp_path: Path) -> dict[str, str]:
    """Each run's status under tmp_path, by label, as llmtrain.comparison finds them."""
    from llmtrain.comparison import find_runs

    return {r.label: r.status for r in find_runs([str(tmp_path)])}
