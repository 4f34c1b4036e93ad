"""llmtrain.train.trackers: a missing tracker names its extra."""

from __future__ import annotations

import importlib.util

import pytest

from llmtrain.config import LoggerConfig, Tracker
from llmtrain.errors import ConfigError
from llmtrain.train import trackers


def test_a_missing_tracker_names_its_extra(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    cfg = LoggerConfig(trackers=[Tracker.tensorboard, Tracker.wandb])
    with pytest.raises(ConfigError, match=r"wandb needs wandb: pip install 'llmtrain\[wandb\]'"):
        trackers.accelerator_kwargs(cfg, tmp_path)
    assert trackers.accelerator_kwargs(LoggerConfig(), tmp_path) == {}
