"""`make recipes`: run every CPU recipe (configs/recipe/*.yaml, recipe.device=cpu) and fail if
any does not reproduce its expected figures within tolerance.

python scripts/recipes.py [--out DIR]   # run them all, each in DIR/<recipe>/ (default: a fresh
                                        # outputs/recipes/<date>_<time>/), then check them
python scripts/recipes.py --check RUN_DIR ...   # only check finished recipe runs

A recipe with `recipe.starts_from: OTHER` runs after OTHER and gets
`model.name_or_path=DIR/OTHER/final`. Exit code 1 when any recipe run failed, missed a figure
or has none measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def cpu_recipes() -> list[dict]:
    """The CPU recipes' `recipe:` blocks, each after the recipe it starts from."""
    found = {}
    for path in sorted((ROOT / "configs" / "recipe").glob("*.yaml")):
        recipe = OmegaConf.to_container(OmegaConf.load(path).recipe)
        if recipe.get("device", "cpu") == "cpu":
            found[path.stem] = recipe
    ordered: list[dict] = []

    def add(name: str) -> None:
        if name not in found:
            sys.exit(f"recipes: a CPU recipe starts from '{name}', which is not a CPU recipe")
        if found[name] not in ordered:
            if found[name].get("starts_from"):
                add(found[name]["starts_from"])
            ordered.append(found[name])

    for name in found:
        add(name)
    return ordered


def run_all(out: Path) -> list[Path]:
    runs = []
    for recipe in cpu_recipes():
        run_dir = out / recipe["name"]
        args = [f"recipe={recipe['name']}", f"hydra.run.dir={run_dir}"]
        if recipe.get("starts_from"):
            args.append(f"model.name_or_path={out / recipe['starts_from'] / 'final'}")
        command = [sys.executable, "-m", "llmtrain", recipe["command"], *args]
        print("$ " + " ".join(command[1:]), flush=True)
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT)
        print(f"{recipe['name']}: exit {result.returncode}, {time.perf_counter() - start:.0f} s")
        runs.append(run_dir)
    return runs


def check(runs: list[Path]) -> int:
    """Print each run's verdict; 1 if any did not reproduce (or has no verdict), else 0."""
    failed = 0
    for run in runs:
        summary_file = run / "summary.json"
        if not summary_file.is_file():
            print(f"{run}: no summary.json (the run did not finish): FAILED")
            failed += 1
            continue
        verdict = json.loads(summary_file.read_text()).get("recipe")
        if verdict is None:
            print(f"{run}: not a recipe run (no 'recipe' in summary.json): FAILED")
            failed += 1
            continue
        ok = verdict["reproduced"] is True
        failed += not ok
        print(f"{verdict['name']} ({run}): {'reproduced' if ok else 'NOT reproduced: FAILED'}")
        for r in verdict["metrics"]:
            print(
                f"  {r['metric']}: reached {r['reached']}, expected {r['expected']} "
                f"± {r['tolerance']}: {r['outcome']}"
            )
    print(f"recipes: {len(runs) - failed} of {len(runs)} reproduced")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where the recipe runs go")
    parser.add_argument("--check", nargs="+", type=Path, metavar="RUN_DIR", help="only check")
    args = parser.parse_args()
    if args.check:
        return check(args.check)
    out = args.out or ROOT / "outputs" / "recipes" / time.strftime("%Y-%m-%d_%H-%M-%S")
    return check(run_all(out.resolve()))


if __name__ == "__main__":
    sys.exit(main())
