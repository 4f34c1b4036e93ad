"""The run directory contract, and its only writer.

    <run>/.hydra/                 Hydra's composed config and overrides
    <run>/metrics.jsonl           one JSON object per event: {"step", "split": train|eval, ...}
    <run>/checkpoints/step-<N>/   everything needed to continue training
    <run>/final/                  a Hugging Face model and tokenizer (save_pretrained)
    <run>/summary.json            final metrics, steps, tokens, time, parameter count
    <run>/run.log                 every line the run printed
    <run>/status.json             how a run that did not finish ended: stopped or failed
    <run>/.lock                   held (flock) by the one process writing the run; its holder

Only the main process writes; on other ranks every method is a no-op. One run directory has
one writer: `claimed` holds it for a run (see there).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmtrain.atomic import atomic_dir, atomic_write_text
from llmtrain.errors import ConfigError

LOCK = ".lock"
STATUS = "status.json"


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


def holder(path: Path) -> dict[str, Any] | None:
    """The live process writing the run directory `path` ({"host", "pid", "since"}), or None.
    The lock is the kernel's (flock): a killed holder leaves nothing that blocks."""
    lock = Path(path) / LOCK
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_info(fd)
    finally:
        os.close(fd)  # also releases the shared lock taken to test
    return None


def _holder_info(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}  # written a moment from now


def run_status(path: Path) -> dict[str, Any] | None:
    """How an unfinished run ended (status.json: "status" stopped|failed, "step", "reason")."""
    try:
        return json.loads((Path(path) / STATUS).read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def claimed(path: Path, created: Path | None = None) -> Iterator[None]:
    """Hold the run directory `path` for one run (the main process of a launch calls this).

    A second writer is refused, naming the holder. A run that ends without finishing records
    how in status.json (stopped by a signal, or failed). A run that fails before it logged
    anything leaves nothing: what it wrote in a directory that was empty is removed, and so are
    the directories this launch made (`created`: the outermost of them, holding `path`)."""
    path = Path(path)
    fresh = not any(path.iterdir())
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        info = _holder_info(fd)
        os.close(fd)
        raise ConfigError(
            f"{path} is in use by process {info.get('pid', '?')} on {info.get('host', '?')} "
            f"(since {info.get('since', '?')}): one run directory, one writer; wait for it to "
            "end, or give another hydra.run.dir"
        ) from None
    try:
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        holder_text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": since})
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_text.encode(), 0)
        (path / STATUS).unlink(missing_ok=True)  # running again
        yield
    except BaseException as e:
        code = getattr(e, "exit_code", 1)
        if fresh and not (path / "metrics.jsonl").exists():
            _remove(path, created)
        elif code != 0:  # 0: nothing went wrong (e.g. the run was already complete)
            stopped = isinstance(e, KeyboardInterrupt) or code > 128  # a signal's exit code
            steps = [r["step"] for r in read_metrics(path)]
            status = {
                "status": "stopped" if stopped else "failed",
                "step": max(steps, default=None),
                "reason": str(e).splitlines()[0] if str(e) else type(e).__name__,
            }
            atomic_write_text(path / STATUS, json.dumps(status, indent=2) + "\n")
        raise
    finally:
        os.close(fd)


def _remove(path: Path, created: Path | None) -> None:
    """Empty `path` (it was empty before the run), then remove it and its parents up to
    `created` if this launch made them and they hold nothing else."""
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if created is None or (path != created and created not in path.parents):
        return
    for directory in [path, *path.parents]:
        with contextlib.suppress(OSError):  # not empty: another run's
            directory.rmdir()
        if directory == created:
            return
