"""The shipped recipes (configs/recipe/) and their checker, scripts/recipes.py, loaded as a
module."""

from __future__ import annotations

import importlib.util

from conftest import REPO

CHECKER = REPO / "scripts" / "recipes.py"
RECIPES = REPO / "configs" / "recipe"


def _script():
    spec = importlib.util.spec_from_file_location("recipes_script", CHECKER)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


SCRIPT = _script()
