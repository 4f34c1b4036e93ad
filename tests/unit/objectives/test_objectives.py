"""llmtrain.objectives.check_config: objective settings that cannot work are named."""

from __future__ import annotations

import pytest

from llmtrain.config import ObjectiveConfig, ObjectiveName


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"mlm_probability": 1.5}, "objective.mlm_probability"),
        ({"mlm_probability": 0.0}, "objective.mlm_probability"),
        ({"mask_replace_prob": 0.9, "random_replace_prob": 0.2}, "exceeds 1"),
        ({"dupe_factor": 0, "name": ObjectiveName.mlm_nsp}, "objective.dupe_factor"),
        ({"whole_word_mask": True, "name": ObjectiveName.clm}, "objective.whole_word_mask"),
    ],
)
def test_objective_settings_that_cannot_work_are_named(settings, named):
    from llmtrain.config import Packing
    from llmtrain.errors import ConfigError
    from llmtrain.objectives import check_config

    cfg = ObjectiveConfig(**{"name": ObjectiveName.mlm, **settings})
    with pytest.raises(ConfigError, match=named):
        check_config(cfg, block_size=128, packing=Packing.concat)
