"""Recipe report: the recipe's leaderboard rows, and its measured metrics next to the paper's published ones."""

from __future__ import annotations

from typing import Any

from opreid_bench.engine.recipes.runner import Plan


def recipe_rows(plan: Plan) -> list[Any]:
    """Leaderboard rows of the recipe: its published tables' rows and its runs' rows, on its datasets only."""
    from opreid_bench.leaderboard import load_published, load_runs
    from opreid_bench.leaderboard.render import sort_rows

    keys = set(plan.recipe.result_keys())
    rows = [r for r in load_published() if r.table in plan.recipe.published.tables and r.dataset in keys]
    run_dirs = [r.run_dir for r in plan.runs if (r.run_dir / "run.json").is_file()]
    rows += [r for r in load_runs(run_dirs) if r.dataset in keys] if run_dirs else []
    return sort_rows(rows)


def comparison(plan: Plan, rows: list[Any]) -> list[dict[str, Any]]:
    """Measured next to published: one entry per (run, evaluated dataset), with the paper's row if it has one."""
    published = {(r.method, r.dataset): r for r in rows if r.source == "published"}
    out = []
    for row in rows:
        if row.source == "published":
            continue
        paper_name = plan.recipe.published.methods.get(row.method)
        pub = published.get((paper_name, row.dataset)) if paper_name else None
        out.append({"method": row.method, "train_dataset": row.details.get("train_dataset"),
                    "dataset": row.dataset, "rank1": row.rank1, "mAP": row.mAP,
                    "published_method": paper_name if pub else None,
                    "published_rank1": pub.rank1 if pub else None, "published_mAP": pub.mAP if pub else None,
                    "table": pub.table if pub else None, "run_dir": row.source})
    return out
