"""llmtrain.train.job: warmup longer than training is refused."""

from __future__ import annotations

import pytest

from llmtrain.config import TrainerConfig


def test_fit_rejects_warmup_longer_than_training(tmp_path):
    from llmtrain.errors import ConfigError
    from llmtrain.train.job import total_steps

    with pytest.raises(ConfigError, match="trainer.warmup_steps"):
        total_steps(TrainerConfig(max_steps=10, warmup_steps=10), n_examples=100, world=1)
