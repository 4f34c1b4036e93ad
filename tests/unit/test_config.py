"""Every shipped config composes and validates; typos and wrong types fail at composition."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from llmtrain.commands import config_dir
from llmtrain.config import (
    EvaluateConfig,
    FinetuneConfig,
    GlueSuiteConfig,
    PretrainConfig,
    register_schemas,
)
from llmtrain.tasks import typed

COMMANDS = {
    "pretrain": PretrainConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvaluateConfig,
    "glue": GlueSuiteConfig,
}


# Options that need a value from the user, and one that satisfies them.
REQUIRED = {
    "data/text_files": ["data.train_files=[a.txt]"],
    "data/hf": ["data.name=some/dataset"],
    "tokenizer/pretrained": ["tokenizer.name_or_path=some/tokenizer"],
    "task/custom": ["task.train_file=a.csv", "task.validation_file=b.csv"],
}


def _compose(overrides: list[str], command: str = "pretrain"):
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=command, overrides=overrides)
    return typed(cfg)  # as the CLI converts it: the task by its kind's schema


def _options() -> list[tuple[str, str]]:
    root = config_dir()
    return [(p.parent.name, p.stem) for p in sorted(root.glob("*/*.yaml"))]


def _groups_of(command: str) -> set[str]:
    """The option groups in a command's defaults list."""
    defaults = OmegaConf.load(config_dir() / f"{command}.yaml").defaults
    return {next(iter(d)) for d in defaults if isinstance(d, dict) or OmegaConf.is_dict(d)}


def _uses() -> list[tuple[str, str, str]]:
    """(command, group, option) for every option of every group a command composes (recipes
    belong to one command each: see test_every_recipe_composes)."""
    return [
        (command, group, option)
        for command in COMMANDS
        for group, option in _options()
        if group in _groups_of(command) and group != "recipe"
    ]


@pytest.mark.parametrize(("command", "group", "option"), _uses())
def test_every_group_option_composes(command, group, option):
    cfg = _compose([f"{group}={option}", *REQUIRED.get(f"{group}/{option}", [])], command)
    assert isinstance(cfg, COMMANDS[command])


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_composes_as_shipped(command):
    assert isinstance(_compose([], command), COMMANDS[command])


def _recipes() -> list[str]:
    return [option for group, option in _options() if group == "recipe"]


@pytest.mark.parametrize("name", _recipes())
def test_every_recipe_composes(name):
    """Each shipped recipe composes for its command, validates, and carries its figures."""
    declared = OmegaConf.load(config_dir() / "recipe" / f"{name}.yaml").recipe
    starts = ["model.name_or_path=some/final"] if declared.get("starts_from") else []
    cfg = _compose([f"recipe={name}", *starts], declared.command)
    assert isinstance(cfg, COMMANDS[declared.command])
    recipe = cfg.recipe
    assert recipe.name == name and recipe.expected
    if recipe.device == "cpu":  # measured here: every figure has a value and the note says when
        assert all(e.value is not None for e in recipe.expected.values())
        assert "2026" in recipe.measured
    else:
        assert recipe.measured.startswith("not yet measured")
    if recipe.starts_from:
        assert recipe.starts_from in _recipes()


def test_groups_cover_the_schemas():
    groups = {group for group, _ in _options()}
    fields = {f for schema in COMMANDS.values() for f in schema.__dataclass_fields__}
    assert groups == fields


def test_misspelt_key_fails():
    with pytest.raises(ConfigCompositionException, match="trainer.lrr"):
        _compose(["trainer.lrr=1e-3"])


def test_wrong_type_fails():
    with pytest.raises(ConfigCompositionException, match="trainer.max_steps"):
        _compose(["trainer.max_steps=many"])


def test_overrides_reach_the_schema():
    cfg = _compose(
        ["trainer.lr=3e-4", "model=gpt2-tiny", "objective=clm", "trainer.precision=bf16"]
    )
    assert cfg.trainer.lr == 3e-4 and cfg.model.family.value == "gpt2"
    assert cfg.objective.name.value == "clm" and cfg.trainer.precision.value == "bf16"


def test_the_documented_option_tables_match_the_schema():
    """docs/configuration.md's tables are the schema's (scripts/sync_docs.py rewrites them)."""
    import subprocess
    import sys

    from llmtrain.commands import config_dir

    script = config_dir().parent / "scripts" / "sync_docs.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


# The resume-free keys as they were written out by hand before they were marked on the fields.
RESUME_FREE_BEFORE = {
    *(
        f"trainer.{k}"
        for k in (
            "max_steps budget epochs log_every eval_every eval_batches save_every keep_last "
            "num_workers compile early_stopping resume overwrite allow_config_change "
            "max_bad_steps"
        ).split()
    ),
    *(f"data.{k}" for k in "cache_dir num_proc shard_mb prepare_shard".split()),
    "task.cache_dir",
    *(f"task.{k}" for k in "samples max_new_tokens do_sample temperature top_p rouge".split()),
    *(f"logger.{k}" for k in "trackers project wandb_mode mlflow_tracking_uri console".split()),
}


def test_resume_free_keys_come_from_the_fields():
    from llmtrain.tasks import resume_free_keys

    assert resume_free_keys() == RESUME_FREE_BEFORE


def test_resume_free_keys_take_schemas_from_outside():
    """A task kind's schema, kept outside config.py, adds its marked fields under its group."""
    from dataclasses import dataclass

    from llmtrain.config import opt, resume_free_keys

    @dataclass
    class Kind:
        shown: int = opt(3, "how many to show", resume_free=True)
        trained: int = opt(1, "what is trained")

    assert resume_free_keys([("task", Kind)]) == resume_free_keys() | {"task.shown"}
