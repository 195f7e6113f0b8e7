"""`opreid-bench reproduce`: run a recipe of baselines/recipes/ (train, evaluate, leaderboard) in one command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from opreid_bench.errors import OpreidError


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 140))


def _list_recipes(json_out: bool) -> None:
    from opreid_bench.engine.recipes import list_recipes, load_recipe

    recipes = [load_recipe(name) for name in list_recipes()]
    if json_out:
        click.echo(json.dumps({"recipes": [{"name": r.name, "file": str(r.source), "description": r.description,
                                            "hardware": r.hardware, "runs": len(r.train)} for r in recipes]}))
        return
    from rich.table import Table

    table = Table(title="recipes (baselines/recipes/)", title_justify="left")
    for col in ("recipe", "runs", "description", "hardware"):
        table.add_column(col, justify="right" if col == "runs" else "left")
    for r in recipes:
        table.add_row(r.source.stem, str(len(r.train)), r.description, r.hardware)
    _console().print(table)


def _print_plan(plan: Any) -> None:
    from rich.table import Table

    data = plan.to_dict()
    table = Table(title=f"recipe {plan.recipe.name}: {len(plan.runs)} runs into {plan.out} (device {plan.device})",
                  title_justify="left")
    for col in ("method", "trained on", "evaluated on", "status", "run directory"):
        table.add_column(col)
    for r in plan.runs:
        table.add_row(r.method, r.dataset, ", ".join(r.protocols), r.status, str(r.run_dir))
    console = _console()
    console.print(table)
    roots = Table(title="dataset roots", title_justify="left")
    roots.add_column("dataset")
    roots.add_column("root")
    for ds, root in plan.roots.items():
        roots.add_row(ds, root or "[red]not set[/red]")
    console.print(roots)
    click.echo("commands:")
    for run in data["runs"]:
        for cmd in run["commands"]:
            click.echo(f"  {cmd}")
    if plan.problems:
        click.echo("missing (pass these before running):")
        for p in plan.problems:
            click.echo(f"  - {p}")


def _print_results(plan: Any, rows: list[Any], compare: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from opreid_bench.leaderboard.render import print_rich

    print_rich(rows)
    if not any(c["published_method"] for c in compare):  # nothing of the paper's to compare with
        return

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    table = Table(title=f"recipe {plan.recipe.name}: measured vs published", title_justify="left")
    for col in ("method", "trained on", "evaluated on", "R-1", "mAP", "paper R-1", "paper mAP", "Δ mAP", "paper row"):
        table.add_column(col, justify="right" if col in ("R-1", "mAP", "paper R-1", "paper mAP", "Δ mAP") else "left")
    for c in compare:
        delta = (c["mAP"] - c["published_mAP"]) if c["mAP"] is not None and c["published_mAP"] is not None else None
        table.add_row(c["method"], str(c["train_dataset"] or ""), c["dataset"], pct(c["rank1"]), pct(c["mAP"]),
                      pct(c["published_rank1"]), pct(c["published_mAP"]),
                      "-" if delta is None else f"{delta:+.1f}",
                      f"{c['published_method']} ({c['table']})" if c["published_method"] else "-")
    _console().print(table)


@click.command("reproduce")
@click.option("--recipe", default=None, metavar="NAME|PATH",
              help="A recipe of baselines/recipes/ (see --list) or a recipe YAML file.")
@click.option("--list", "list_only", is_flag=True, help="List the recipes with one-line descriptions.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the runs (one sub-folder METHOD__DATASET per run). Default: runs/RECIPE.")
@click.option("--root", "roots", multiple=True, metavar="NAME=PATH|PATH",
              help="Root of dataset NAME (overrides the recipe's data:); a bare PATH sets every dataset's root.")
@click.option("--pretrained", multiple=True, metavar="BACKBONE=PATH",
              help="Local torchvision checkpoint of a backbone, e.g. resnet50=~/weights/resnet50-0676ba61.pth.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Value of ${NAME} in the recipe.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Where to train and evaluate (default: the recipe's device).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Config override for every method, after the recipe's overrides (e.g. --set optim.epochs=60).")
@click.option("--dry-run", is_flag=True,
              help="Print the plan (runs, commands, missing roots); train nothing; exit 1 when something is missing.")
@click.option("--json", "json_out", is_flag=True, help="Print exactly one JSON object on stdout.")
def reproduce(recipe: str | None, list_only: bool, out: Path | None, roots: tuple[str, ...],
              pretrained: tuple[str, ...], variables: tuple[str, ...], device: str | None, sets: tuple[str, ...],
              dry_run: bool, json_out: bool) -> None:
    """Train every (method, dataset) of a recipe, evaluate each run on its protocols, print the leaderboard.

    Resumable: a finished run (model.pt + run.json) is skipped, a partial one resumed, an evaluation already in
    run.json not repeated. Results go into each run's run.json under results[PROTOCOL], so
    `opreid-bench leaderboard --runs OUT` shows them too. Missing dataset roots or weights: one error naming them.

    \b
    Examples:
      opreid-bench reproduce --list
      opreid-bench reproduce --recipe cpu_cuhk03 --out runs/cpu
      opreid-bench reproduce --recipe paper_table3 --root ~/data --pretrained resnet50=~/w/resnet50-0676ba61.pth \\
          --out runs/table3 --dry-run
      opreid-bench reproduce --recipe paper_table5 --root ~/data --root opreid=~/opreid \\
          --pretrained resnet50=~/w/resnet50-0676ba61.pth --device cuda --out runs/paper --json
    """
    from opreid_bench.engine.recipes import comparison, load_recipe, plan_recipe, recipe_rows, run_plan

    if list_only:
        _list_recipes(json_out)
        return
    if recipe is None:
        raise OpreidError("reproduce needs --recipe NAME (see `opreid-bench reproduce --list`)")
    spec = load_recipe(recipe)
    plan = plan_recipe(spec, out if out is not None else Path("runs") / spec.name, roots=roots,
                       pretrained=pretrained, variables=variables, sets=sets, device=device)
    if dry_run:
        if json_out:
            click.echo(json.dumps({"dry_run": True, **plan.to_dict()}))
        else:
            _print_plan(plan)
        if plan.problems:  # a check before a long run: a script that dry-runs first stops here
            raise SystemExit(1)
        return
    summaries = run_plan(plan)
    rows = recipe_rows(plan)
    compare = comparison(plan, rows)
    if json_out:
        click.echo(json.dumps({"dry_run": False, "recipe": spec.name, "source": str(spec.source),
                               "out": str(plan.out), "device": plan.device, "runs": summaries,
                               "leaderboard": [r.to_json() for r in rows], "comparison": compare}))
    else:
        _print_results(plan, rows, compare)
        click.echo(f"runs in {plan.out}; again with `opreid-bench leaderboard --runs {plan.out}`", err=True)


COMMANDS = [reproduce]
