"""llmtrain pretrain's start-up checks: what a streamed corpus cannot do is named before any
data is read."""

from __future__ import annotations

import pytest

from llmtrain.commands.pretrain import check
from llmtrain.config import ObjectiveName, PretrainConfig, Source
from llmtrain.errors import ConfigError


def _streamed() -> PretrainConfig:
    cfg = PretrainConfig()
    cfg.data.source, cfg.data.name, cfg.data.streaming = Source.hf, "/no/such/dataset", True
    return cfg


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("trainer.epochs", 1.0, "trainer.epochs=1.0: a stream's length is unknown"),
        ("trainer.num_workers", 2, "trainer.num_workers=2: a stream is read in order"),
        ("objective.name", ObjectiveName.mlm_nsp, "objective=mlm_nsp"),
    ],
)
def test_what_a_stream_cannot_do_is_named_at_start(key, value, named):
    cfg = _streamed()
    group, name = key.split(".")
    setattr(getattr(cfg, group), name, value)
    with pytest.raises(ConfigError, match=named):
        check(cfg)


def test_a_streamed_mixture_is_refused():
    cfg = PretrainConfig()
    cfg.data.source, cfg.data.streaming = Source.mixture, True
    cfg.data.sources = {"web": {"files": ["a.txt"]}}
    with pytest.raises(ConfigError, match="data.streaming reads one corpus in order"):
        check(cfg)


def test_a_stream_passes_the_checks_with_its_defaults():
    check(_streamed())  # max_steps, no workers, objective=mlm: nothing to refuse
