"""Recipes through the CLI: each shipped recipe composes with its required keys given and fails
in one line without one, one for another command is refused, and a run that misses its figures
says so, exits 0, and fails the checker (scripts/recipes.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from omegaconf import OmegaConf
from recipe_fixtures import CHECKER, RECIPES, SCRIPT

from llmtrain.config import ExpectedMetric, FinetuneConfig, PretrainConfig, RecipeConfig
from llmtrain.recipes import verdict


def _recipe(name: str) -> tuple[str, list[str]]:
    """A shipped recipe's command and required keys (recipe.requires)."""
    recipe = OmegaConf.load(RECIPES / f"{name}.yaml").recipe
    return recipe.command, list(recipe.get("requires", []))


def _given(keys) -> list[str]:
    """A stand-in value for each required key (composition does not read them)."""
    return [f"{k}=[a.txt]" if k in SCRIPT.LIST_KEYS else f"{k}=some/dir" for k in keys]


NAMES = sorted(p.stem for p in RECIPES.glob("*.yaml"))
MISSING = [(name, key) for name in NAMES for key in _recipe(name)[1]]


@pytest.mark.parametrize("name", NAMES)
def test_every_recipe_composes_with_its_required_keys(name, cache_dir):
    command, required = _recipe(name)
    assert set(required) == set(SCRIPT.INPUTS.get(name, {}))  # `make recipes` gives them all
    header = (RECIPES / f"{name}.yaml").read_text().split("defaults:")[0]
    assert f"llmtrain {command} recipe={name}" in header  # the command line a user types...
    assert all(f"{key}=" in header for key in required)  # ...with its required keys
    result = run_cli([command, f"recipe={name}", *_given(required), "--cfg", "job"], cache_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = OmegaConf.create(result.stdout)
    schema = {"pretrain": PretrainConfig, "finetune": FinetuneConfig}[command]
    assert isinstance(OmegaConf.to_object(OmegaConf.merge(schema, cfg)), schema)  # validates
    for given in _given(required):
        key, value = given.split("=", 1)
        assert str(OmegaConf.select(cfg, key)).replace("'", "") == value
    recipe = cfg.recipe
    assert recipe.name == name and recipe.command == command and recipe.expected
    if recipe.device == "cpu":  # measured here: every figure has a value and the note says when
        assert all(e.value is not None for e in recipe.expected.values())
        assert "2026" in recipe.measured
    else:
        assert recipe.measured.startswith("not yet measured")
    if recipe.get("starts_from"):
        assert recipe.starts_from in NAMES


@pytest.mark.parametrize(("name", "key"), MISSING)
def test_a_recipe_without_a_required_key_fails_in_one_line(name, key, cache_dir, tmp_path):
    command, required = _recipe(name)
    others = _given(k for k in required if k != key)
    result = run_cli(
        [command, f"recipe={name}", *others, f"hydra.run.dir={tmp_path / 'run'}"], cache_dir
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"llmtrain {command}: error: recipe={name} needs {key}: set it, e.g. {key}=...\n"
    )


def _check(*runs: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CHECKER), "--check", *map(str, runs)], capture_output=True, text=True
    )


def test_a_recipe_run_that_misses_says_so_exits_0_and_the_checker_fails(tmp_path, cache_dir):
    text = tmp_path / "small.txt"
    text.write_text("\n\n".join(f"line {i} of a very small play, act {i % 7}." for i in range(300)))
    run = tmp_path / "run"
    tiny = [
        f"data.train_files=[{text}]",
        "tokenizer.vocab_size=300",
        "tokenizer.min_frequency=1",
        "model.hidden_size=32",
        "model.intermediate_size=64",
        "trainer.max_steps=2",
        "trainer.warmup_steps=1",
        "trainer.batch_size=4",
        "trainer.block_size=32",
        "trainer.save_every=0",
        "recipe.expected.loss.value=1.0",  # out of reach of two steps: a sure miss
    ]
    result = run_cli(
        ["pretrain", "recipe=gpt2-tiny-shakespeare", *tiny, f"hydra.run.dir={run}"], cache_dir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    row = summary["recipe"]["metrics"][0]
    assert summary["recipe"]["reproduced"] is False
    assert row["metric"] == "loss" and row["reached"] == summary["loss"]
    assert row["outcome"] == "outside tolerance"
    assert "recipe gpt2-tiny-shakespeare: NOT reproduced" in result.stdout
    assert f"loss: reached {summary['loss']:.4g}, expected 1 ± 0.05: outside tolerance" in (
        result.stdout
    )

    checked = _check(run)
    assert checked.returncode == 1 and "NOT reproduced: FAILED" in checked.stdout
    # The same run with its figure met passes the checker.
    summary["recipe"] = verdict(
        RecipeConfig(name="r", expected={"loss": ExpectedMetric(summary["loss"], 0.05)}), summary
    )
    (run / "summary.json").write_text(json.dumps(summary))
    checked = _check(run)
    assert checked.returncode == 0, checked.stdout
    assert _check(run, tmp_path / "never-ran").returncode == 1


def test_a_recipe_for_another_command_is_refused(cache_dir):
    result = run_cli(["finetune", "recipe=bert-tiny-stdlib"], cache_dir)
    assert result.returncode == 2
    assert "recipe/bert-tiny-stdlib" in result.stderr and len(result.stderr.splitlines()) == 1
