"""The run directory contract, and its only writer.

    <run>/.hydra/                 Hydra's composed config and overrides
    <run>/metrics.jsonl           one JSON object per event: {"step", "split": train|eval, ...}
    <run>/checkpoints/step-<N>/   everything needed to continue training
    <run>/final/                  a Hugging Face model and tokenizer (save_pretrained)
    <run>/summary.json            final metrics, steps, tokens, time, parameter count

Only the main process writes; on other ranks every method is a no-op.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmtrain.atomic import atomic_dir, atomic_write_text


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN/inf
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's rows; none for a run that has not logged yet. A line being written by a
    run in progress (no newline yet) is left out."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


class RunDir:
    def __init__(self, path: Path, is_main: bool = True) -> None:
        self.path = Path(path)
        self.is_main = is_main
        self.metrics = self.path / "metrics.jsonl"
        self.summary = self.path / "summary.json"
        self.checkpoints = self.path / "checkpoints"
        self.final = self.path / "final"
        if is_main:
            self.path.mkdir(parents=True, exist_ok=True)

    def log(self, row: dict[str, Any]) -> None:
        """Append one event to metrics.jsonl (flushed at once, so it can be read mid-run)."""
        if not self.is_main:
            return
        with open(self.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: _jsonable(v) for k, v in row.items()}) + "\n")

    def write_text(self, relative: str, text: str) -> None:
        """Write `<run>/<relative>` atomically (e.g. predictions/validation.tsv)."""
        if self.is_main:
            atomic_write_text(self.path / relative, text)

    def promote(self, source: str, target: str) -> None:
        """Make the complete directory `<run>/<source>` become `<run>/<target>` (one rename)."""
        if self.is_main:
            src, dst = self.path / source, self.path / target
            if not src.exists() and dst.exists():
                return  # promoted before an interruption; the resumed run had nothing better
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(src, dst)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.is_main:
            clean = {k: _jsonable(v) for k, v in summary.items()}
            atomic_write_text(self.summary, json.dumps(clean, indent=2) + "\n")

    @contextlib.contextmanager
    def write_dir(self, relative: str) -> Iterator[Path | None]:
        """A scratch directory that replaces `<run>/<relative>` atomically when the block ends.

        Yields None on non-main ranks, which must write nothing.
        """
        if not self.is_main:
            yield None
            return
        with atomic_dir(self.path / relative) as tmp:
            yield tmp

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step-{step}"

    def list_checkpoints(self) -> list[Path]:
        """Checkpoint directories, oldest first (scratch directories are never listed)."""
        if not self.checkpoints.is_dir():
            return []
        found = [p for p in self.checkpoints.glob("step-*") if p.name[5:].isdigit()]
        return sorted(found, key=lambda p: int(p.name[5:]))

    def truncate_metrics(self, last_step: int | None) -> None:
        """Drop metrics.jsonl rows after `last_step` (all rows for None): a resumed run logs
        those steps again, exactly as the interrupted run would have."""
        if not self.is_main or not self.metrics.exists():
            return
        rows = self.metrics.read_text().splitlines()
        keep = [] if last_step is None else [r for r in rows if json.loads(r)["step"] <= last_step]
        atomic_write_text(self.metrics, "".join(r + "\n" for r in keep))

    def clear(self) -> None:
        """Remove what a previous run wrote (for a deliberate fresh start); .hydra/ stays."""
        if self.is_main:
            for path in (
                self.checkpoints,
                self.path / "best",
                self.final,
                self.path / "predictions",
            ):
                shutil.rmtree(path, ignore_errors=True)
            for path in (self.metrics, self.summary):
                path.unlink(missing_ok=True)

    def remove_scratch(self) -> None:
        """Remove half-written directories a killed process left behind (never read anyway)."""
        if self.is_main:
            for parent in (self.path, self.checkpoints):
                for tmp in parent.glob(".*.tmp-*") if parent.is_dir() else []:
                    shutil.rmtree(tmp, ignore_errors=True)

    def prune_checkpoints(self, keep: int) -> None:
        """Remove all but the newest `keep` checkpoints (called after a new one is complete)."""
        if self.is_main and keep > 0:
            for old in self.list_checkpoints()[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
