"""Reproduction recipes (``baselines/recipes/*.yaml``): which methods to train on which datasets, evaluated how.

A recipe is one reproduction written as data and run by ``opreid-bench reproduce --recipe NAME``. The package has
one module per job:

- :mod:`.schema`: the dataclasses, loading and validating a recipe YAML (its format is in that module's docstring),
  and ``${VAR}`` expansion;
- :mod:`.runner`: resolving a recipe into a plan, training and evaluating its runs, and recording the metrics in
  each run's ``run.json`` (what ``opreid-bench leaderboard --runs OUT`` reads);
- :mod:`.report`: the recipe's leaderboard rows and its measured-vs-published comparison.

Every public name is re-exported here, so callers import from ``opreid_bench.engine.recipes``.
"""

from opreid_bench.engine.recipes.report import comparison, recipe_rows
from opreid_bench.engine.recipes.runner import Plan, PlannedRun, evaluate_run, plan_recipe, run_plan
from opreid_bench.engine.recipes.schema import (
    RECIPES_DIR,
    REPO_DIR,
    TOP_KEYS,
    PublishedSpec,
    Recipe,
    RunSpec,
    expand,
    list_recipes,
    load_recipe,
    resolve_recipe_path,
    variable_lookup,
)

__all__ = [
    "RECIPES_DIR",
    "REPO_DIR",
    "TOP_KEYS",
    "Plan",
    "PlannedRun",
    "PublishedSpec",
    "Recipe",
    "RunSpec",
    "comparison",
    "evaluate_run",
    "expand",
    "list_recipes",
    "load_recipe",
    "plan_recipe",
    "recipe_rows",
    "resolve_recipe_path",
    "run_plan",
    "variable_lookup",
]
