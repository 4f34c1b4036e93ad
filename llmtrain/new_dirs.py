"""Which directories a launch creates (a Hydra callback, configs/run_dirs.yaml), so that a run
that fails at start can take away what it made: a failed start leaves nothing.

Hydra creates the run directory (or a sweep's) before the job starts; the callbacks run just
before that, when the directory's name is already fixed (`${now:}` is resolved once and
cached on the config), and note the outermost directory that does not exist yet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

# The outermost directory this launch is about to create for its run or sweep, if any.
_created: dict[str, Path | None] = {"run": None, "sweep": None}


def _first_missing(path: Path) -> Path | None:
    path = Path(os.path.abspath(path))
    missing = None
    for directory in [path, *path.parents]:
        if directory.exists():
            return missing
        missing = directory
    return missing


def created_for(run_dir: Path) -> Path | None:
    """The outermost directory this launch made that holds `run_dir` (None: it existed)."""
    run_dir = Path(os.path.abspath(run_dir))
    for made in _created.values():
        if made is not None and (made == run_dir or made in run_dir.parents):
            return made
    return None


class NewDirs(Callback):
    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        _created["run"] = _first_missing(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        _created["sweep"] = _first_missing(Path(str(config.hydra.sweep.dir)))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        """A sweep whose every job failed at start: its directory holds only Hydra's
        multirun.yaml, which goes with the directories this launch made."""
        made = _created["sweep"]
        sweep = Path(os.path.abspath(str(config.hydra.sweep.dir)))
        if made is None or not sweep.is_dir() or any(p.is_dir() for p in sweep.iterdir()):
            return
        shutil.rmtree(sweep, ignore_errors=True)
        for directory in sweep.parents:
            if directory == made.parent:
                break
            with contextlib.suppress(OSError):  # not empty: someone else's
                directory.rmdir()
