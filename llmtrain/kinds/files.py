"""The local files a file-based task reads: train and validation when training, validation
alone when evaluating."""

from __future__ import annotations

from pathlib import Path

from llmtrain.config import TaskConfig
from llmtrain.errors import ConfigError


def task_files(cfg: TaskConfig, training: bool) -> dict[str, Path]:
    if cfg.test_file:
        raise ConfigError(f"task.test_file: task={cfg.name} predicts its validation file only")
    wanted = {"train": cfg.train_file, "validation": cfg.validation_file}
    if not training:
        del wanted["train"]
    missing = [f"task.{split}_file" for split, path in wanted.items() if not path]
    if missing:
        raise ConfigError(f"task={cfg.name} needs {' and '.join(missing)}")
    return {split: Path(path).expanduser() for split, path in wanted.items()}
