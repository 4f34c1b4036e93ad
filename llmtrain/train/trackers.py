"""Experiment trackers (tensorboard, wandb, mlflow) through Accelerate's tracker integration.

Each writes into the run directory by default, offline: tensorboard event files in
<run>/tensorboard/, a wandb offline run in <run>/wandb/ (`wandb sync` uploads it later), an
mlflow store in <run>/mlflow.db. They are optional extras: a tracker's package is imported only
when it is chosen, and a missing one is a one-line error naming the extra to install.
metrics.jsonl is written whatever is chosen (llmtrain.rundir).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from llmtrain.config import LoggerConfig, Tracker
from llmtrain.errors import ConfigError

# The modules each tracker needs (mlflow's local store is SQLite through sqlalchemy/alembic).
_NEEDS = {
    Tracker.tensorboard: ("tensorboard",),
    Tracker.wandb: ("wandb",),
    Tracker.mlflow: ("mlflow", "sqlalchemy", "alembic"),
}


def accelerator_kwargs(cfg: LoggerConfig | None, run_dir: Path) -> dict[str, Any]:
    """`log_with` and the logging directory for Accelerator(...); empty without trackers."""
    if cfg is None or not cfg.trackers:
        return {}
    for tracker in cfg.trackers:
        missing = [m for m in _NEEDS[tracker] if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"logger.trackers: {tracker.value} needs {', '.join(missing)}: "
                f"pip install 'llmtrain[{tracker.value}]'"
            )
    return {
        "log_with": [t.value for t in dict.fromkeys(cfg.trackers)],
        "project_config": ProjectConfiguration(
            project_dir=str(run_dir), logging_dir=str(run_dir / "tensorboard")
        ),
    }


def start_trackers(
    accelerator: Accelerator, cfg: LoggerConfig | None, run_dir: Path, config: dict[str, Any]
) -> None:
    """Open the chosen trackers (on the main process) with the run's resolved config."""
    if cfg is None or not cfg.trackers or not accelerator.is_main_process:
        return
    init_kwargs: dict[str, dict[str, Any]] = {}
    if Tracker.wandb in cfg.trackers:
        # silent: its banner and run history would bury the run's own summary
        init_kwargs["wandb"] = {
            "dir": str(run_dir),
            "mode": cfg.wandb_mode.value,
            "name": run_dir.name,
            "settings": {"silent": True},
        }
    if Tracker.mlflow in cfg.trackers:
        import mlflow

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its start-up notes are noise here
        mlflow.set_tracking_uri(cfg.mlflow_tracking_uri or f"sqlite:///{run_dir}/mlflow.db")
        init_kwargs["mlflow"] = {
            "logging_dir": str(run_dir / "mlflow-artifacts"),
            "run_name": run_dir.name,
        }
    accelerator.init_trackers(cfg.project, config=flat_params(config), init_kwargs=init_kwargs)


def where(cfg: LoggerConfig | None, run_dir: Path) -> list[str]:
    """For the end of a run: how to look at each tracker's record of it."""
    if cfg is None:
        return []
    uri = cfg.mlflow_tracking_uri or f"sqlite:///{run_dir}/mlflow.db"
    how = {
        Tracker.tensorboard: f"tensorboard --logdir {run_dir / 'tensorboard'}",
        Tracker.mlflow: f"mlflow ui --backend-store-uri {uri}",
        Tracker.wandb: f"wandb sync {run_dir / 'wandb'}/offline-run-*"
        if cfg.wandb_mode.value == "offline"
        else "wandb: the run's page (online)",
    }
    return [f"trackers: {how[t]}" for t in dict.fromkeys(cfg.trackers)]


def flat_params(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The resolved config as `group.key: value` pairs of the scalar types trackers accept."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_params(value, f"{prefix}{key}."))
        elif isinstance(value, bool | int | float | str):
            out[f"{prefix}{key}"] = value
        else:  # lists and None: tensorboard's hparams take scalars and strings only
            out[f"{prefix}{key}"] = str(value)
    return out


def log(accelerator: Accelerator, step: int, split: str, row: dict[str, Any]) -> None:
    """One metrics.jsonl row to every tracker, as `<split>/<metric>` scalars at `step`."""
    if accelerator.trackers:
        values = {
            f"{split}/{k}": v
            for k, v in row.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        accelerator.log(values, step=step)
