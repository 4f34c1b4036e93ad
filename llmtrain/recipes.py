"""Recipes (configs/recipe/*.yaml): did a run reproduce the recipe's expected metrics?

A recipe pins everything its result depends on and carries `expected:` values, each measured by
running the recipe, with a tolerance. At the end of a recipe run, `verdict` compares each with
what the run reached; the run reports it (console and summary.json) and still succeeds:
`make recipes` (scripts/recipes.py) is what fails on a miss.
"""

from __future__ import annotations

from typing import Any

from llmtrain.config import RecipeConfig
from llmtrain.console import Console
from llmtrain.errors import ConfigError


def require(cfg: Any, command: str) -> None:
    """Refuse a recipe (`cfg.recipe`, of a command's config `cfg`) for another command, one whose
    tolerances cannot be met, or one whose required keys (`recipe.requires`) are not given."""
    recipe = cfg.recipe
    if recipe is None:
        return
    if recipe.command != command:
        raise ConfigError(
            f"recipe={recipe.name} is for `llmtrain {recipe.command}`, not `llmtrain {command}`"
        )
    for key, expected in recipe.expected.items():
        if expected.tolerance < 0:
            raise ConfigError(f"recipe.expected.{key}.tolerance={expected.tolerance} is negative")
    for key in recipe.requires:
        if _value(cfg, key) in (None, "", []):
            raise ConfigError(f"recipe={recipe.name} needs {key}: set it, e.g. {key}=...")


def _value(cfg: Any, key: str) -> Any:
    node = cfg
    for name in key.split("."):
        if not hasattr(node, name):
            raise ConfigError(f"recipe.requires names {key}, which is no key of this command")
        node = getattr(node, name)
    return node


def verdict(recipe: RecipeConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """Each expected metric against the value in `summary`: within / outside tolerance (or not
    yet measured, or not reported). `reproduced` is True when all are within, False when any is
    outside or missing, None when nothing measured was there to compare."""
    rows = []
    for key, expected in recipe.expected.items():
        reached = summary.get(key)
        if expected.value is None:
            outcome = "not yet measured"
        elif not isinstance(reached, int | float):
            outcome = "not reported"
        else:
            close = abs(reached - expected.value) <= expected.tolerance
            outcome = "within tolerance" if close else "outside tolerance"
        rows.append(
            {
                "metric": key,
                "expected": expected.value,
                "tolerance": expected.tolerance,
                "reached": reached,
                "outcome": outcome,
            }
        )
    compared = [r for r in rows if r["outcome"] != "not yet measured"]
    reproduced = all(r["outcome"] == "within tolerance" for r in compared) if compared else None
    return {
        "name": recipe.name,
        "measured": recipe.measured,
        "reproduced": reproduced,
        "metrics": rows,
    }


def report(recipe: RecipeConfig | None, summary: dict[str, Any], console: Console) -> None:
    """For a recipe run: its verdict into `summary` (for summary.json) and on the console."""
    if recipe is not None:
        summary["recipe"] = verdict(recipe, summary)
        for line in lines(summary["recipe"]):
            console.line(line)


def lines(result: dict[str, Any]) -> list[str]:
    """The verdict as console lines."""
    said = {True: "reproduced", False: "NOT reproduced", None: "nothing to compare yet"}
    out = [f"recipe {result['name']}: {said[result['reproduced']]} (measured {result['measured']})"]
    for r in result["metrics"]:
        expected = "?" if r["expected"] is None else f"{r['expected']:.4g} ± {r['tolerance']:.4g}"
        reached = r["reached"] if not isinstance(r["reached"], float) else f"{r['reached']:.4g}"
        out.append(f"  {r['metric']}: reached {reached}, expected {expected}: {r['outcome']}")
    return out
