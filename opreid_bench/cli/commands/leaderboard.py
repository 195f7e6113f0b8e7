"""`opreid-bench leaderboard`: the paper's tables next to your own runs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("leaderboard")
@click.option("--runs", "run_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Run directory of `train`/`evaluate` (or a folder of runs, or a reproduce_cpu --out); repeatable.")
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (e.g. occluded_duke); repeatable.")
@click.option("--metric", type=click.Choice(["rank1", "mAP"]), default=None,
              help="Keep rows that report this metric.")
@click.option("--table", "tables", multiple=True,
              help="Only published rows of this table (e.g. 'Table 5', or '2021-2025' for later work).")
@click.option("--no-published", is_flag=True, help="Show only measured runs.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "html", "json"]), default="table")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json: one JSON array of rows.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the output to this file instead of stdout (replaces only a file leaderboard wrote).")
@click.option("--plot-dir", type=click.Path(path_type=Path),
              help="Write one bar plot (PNG) per dataset into this folder (new, empty, or one leaderboard wrote).")
def leaderboard(run_dirs: tuple[Path, ...], datasets: tuple[str, ...], metric: str | None, tables: tuple[str, ...],
                no_published: bool, fmt: str, as_json: bool, out: Path | None, plot_dir: Path | None) -> None:
    """Published results next to runs measured here, sorted by mAP: Yan, Pang et al. (ICCV 2021, Tables 3-5) and
    occluded-ReID methods of 2021-2025, each with its source (`--json` and `--format csv` give the reference).
    The best published row of each dataset is marked with a star, measured rows with an arrow.

    \b
    Examples:
      opreid-bench leaderboard --dataset occluded_duke
      opreid-bench leaderboard --runs runs/ours --format html --out leaderboard.html --plot-dir plots/
      opreid-bench leaderboard --table "Table 5" --json
    """
    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.leaderboard import load_published, load_runs, select_rows
    from opreid_bench.leaderboard import render as R
    from opreid_bench.leaderboard.rows import runs_without_results
    from opreid_bench.outputs import output_folder, refuse_foreign_file

    if out is not None:
        refuse_foreign_file(out, "leaderboard", R.is_leaderboard_output)
    rows = [] if no_published else load_published()
    rows += load_runs(list(run_dirs))
    if empty := runs_without_results(list(run_dirs)):
        click.echo(f"note: {len(empty):,} run(s) hold no evaluation results and give no row (e.g. {empty[0]}): "
                   "`train` records results when it evaluates (eval.at_end, the default), and `opreid-bench evaluate "
                   "--weights RUN/model.pt --dataset NAME --root DIR --run-dir RUN` adds a dataset's", err=True)
    rows = R.sort_rows(select_rows(rows, datasets, tables, metric))
    if as_json:
        fmt = "json"
    if plot_dir is not None:
        with output_folder(plot_dir, "leaderboard", kind="plots", option="--plot-dir",
                           inputs=[("run directory", d) for d in run_dirs]) as folder:
            for p in R.plot_bars(rows, folder):
                click.echo(f"wrote {p}", err=True)
    if fmt == "table" and out is None:
        R.print_rich(rows)
        return
    text = {"json": R.to_json, "csv": R.to_csv, "markdown": R.to_markdown, "html": R.to_html,
            "table": R.to_markdown}[fmt](rows)
    if out is not None:
        atomic_write_text(out, text if text.endswith("\n") else text + "\n")
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


COMMANDS = [leaderboard]
