"""Recipes: a run says whether it reproduced the recipe's figures, and `make recipes`' checker
(scripts/recipes.py) fails on a run that did not. (Each recipe composing: test_config.py.)"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from conftest import run_cli

from llmtrain.config import ExpectedMetric, RecipeConfig
from llmtrain.recipes import verdict

CHECKER = Path(__file__).resolve().parents[1] / "scripts" / "recipes.py"


def _check(*runs: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CHECKER), "--check", *map(str, runs)], capture_output=True, text=True
    )


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


def test_make_recipes_runs_each_cpu_recipe_after_the_one_it_starts_from():
    spec = importlib.util.spec_from_file_location("recipes_script", CHECKER)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    order = [r["name"] for r in script.cpu_recipes()]
    assert set(order) == {"bert-tiny-stdlib", "gpt2-tiny-shakespeare", "sst2-bert-tiny-stdlib"}
    assert order.index("bert-tiny-stdlib") < order.index("sst2-bert-tiny-stdlib")
