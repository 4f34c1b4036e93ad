"""Recipes in-process: the SST-2 recipe's pins, a run's verdict per metric (llmtrain.recipes),
and `make recipes` (scripts/recipes.py) giving each recipe its inputs, in order."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from recipe_fixtures import CHECKER, RECIPES, SCRIPT

from llmtrain.config import ExpectedMetric, RecipeConfig
from llmtrain.recipes import verdict


def test_the_sst2_recipe_pins_learning_not_the_majority_class():
    expected = OmegaConf.load(RECIPES / "sst2-minilm.yaml").recipe.expected.best_accuracy
    assert expected.value - expected.tolerance >= 0.80  # the majority class is 0.509


def test_verdict_per_metric():
    recipe = RecipeConfig(
        name="r",
        expected={
            "loss": ExpectedMetric(5.0, 0.1),
            "best_accuracy": ExpectedMetric(0.8, 0.01),
            "perplexity": ExpectedMetric(None, 1.0),
        },
    )
    within = verdict(recipe, {"loss": 5.08, "best_accuracy": 0.795, "perplexity": 160.0})
    assert within["reproduced"] is True
    assert [r["outcome"] for r in within["metrics"]] == [
        "within tolerance",
        "within tolerance",
        "not yet measured",
    ]
    outside = verdict(recipe, {"loss": 5.2, "best_accuracy": 0.8})
    assert outside["reproduced"] is False
    outcomes = [r["outcome"] for r in outside["metrics"]]
    assert outcomes[:2] == ["outside tolerance", "within tolerance"]
    assert verdict(recipe, {"loss": 5.0})["metrics"][1]["outcome"] == "not reported"
    unmeasured = RecipeConfig(name="gpu", expected={"loss": ExpectedMetric(None, 0.05)})
    assert verdict(unmeasured, {"loss": 3.0})["reproduced"] is None


def test_make_recipes_gives_each_cpu_recipe_its_inputs(tmp_path):
    recipes = {r["name"]: r for r in SCRIPT.cpu_recipes()}
    assert set(recipes) == {"bert-tiny-stdlib", "gpt2-tiny-shakespeare", "sst2-minilm"}
    out = tmp_path / "out"
    assert SCRIPT.recipe_args(recipes["bert-tiny-stdlib"], out) == [
        "recipe=bert-tiny-stdlib",
        f"hydra.run.dir={out / 'bert-tiny-stdlib'}",
    ]
    data = CHECKER.parents[2] / "shared" / "data"  # ../shared next to the repository
    assert SCRIPT.DATA == data
    shakespeare = data / "tinyshakespeare" / "input.txt"
    if shakespeare.is_file():
        args = SCRIPT.recipe_args(recipes["gpt2-tiny-shakespeare"], out)
        assert args[2:] == [f"data.train_files=[{shakespeare}]"]
    minilm = SCRIPT.INPUTS["sst2-minilm"]["model.name_or_path"].find()
    if (data / "sst2").is_dir() and minilm is not None:
        args = SCRIPT.recipe_args(recipes["sst2-minilm"], out)
        assert args[2:] == [f"task.data_dir={data / 'sst2'}", f"model.name_or_path={minilm}"]
        assert (minilm / "config.json").is_file()


def test_make_recipes_runs_a_recipe_after_the_one_it_starts_from(tmp_path, monkeypatch):
    recipe_dir = tmp_path / "configs" / "recipe"
    recipe_dir.mkdir(parents=True)
    (recipe_dir / "a-finetune.yaml").write_text(
        "recipe: {name: a-finetune, command: finetune, device: cpu, starts_from: z-pretrain}\n"
    )
    (recipe_dir / "z-pretrain.yaml").write_text(
        "recipe: {name: z-pretrain, command: pretrain, device: cpu}\n"
    )
    (recipe_dir / "gpu.yaml").write_text("recipe: {name: gpu, command: pretrain, device: gpu}\n")
    monkeypatch.setattr(SCRIPT, "ROOT", tmp_path)
    ordered = SCRIPT.cpu_recipes()
    assert [r["name"] for r in ordered] == ["z-pretrain", "a-finetune"]
    assert SCRIPT.recipe_args(ordered[1], tmp_path / "out")[2:] == [
        f"model.name_or_path={tmp_path / 'out' / 'z-pretrain' / 'final'}"
    ]


def test_make_recipes_does_not_run_a_recipe_whose_input_is_not_here(tmp_path, monkeypatch, capsys):
    recipe = {"name": "r", "command": "finetune"}
    absent = SCRIPT.Package("llmtrain_no_such_package", "model", "no-such-model")
    monkeypatch.setitem(SCRIPT.INPUTS, "r", {"model.name_or_path": absent})
    with pytest.raises(SCRIPT.NotHere, match="not installed: .*pip install no-such-model$"):
        SCRIPT.recipe_args(recipe, tmp_path)
    monkeypatch.setitem(SCRIPT.INPUTS, "r", {"task.data_dir": tmp_path / "nowhere"})
    with pytest.raises(SCRIPT.NotHere, match=r"nowhere \(task.data_dir\) is not there"):
        SCRIPT.recipe_args(recipe, tmp_path)
    assert SCRIPT.check([], not_run=1) == 1  # a recipe not run fails `make recipes`
    assert "recipes: 0 of 1 reproduced (1 not run)" in capsys.readouterr().out
