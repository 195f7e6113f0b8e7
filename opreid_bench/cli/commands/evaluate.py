"""`opreid-bench evaluate`: CMC / mAP / mINP (and occluded breakdown, bootstrap CIs) of query vs gallery features.

Input modes are resolved by :func:`_load_input` (today: ``--features FILE.h5``); evaluation and output are the helper
functions :func:`run_evaluation` and :func:`print_report`, so that another input mode (a trained model on a dataset)
or a post-processing step (re-ranking) is a small, local edit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from opreid_bench.cli.onnx_options import (
    ONNX_HELP,
    onnx_preprocessing_options,
    preprocessing_from_options,
    zoo_input_size,
)
from opreid_bench.cli.options import ZOO_HELP, echo_dataset_notes, parse_key_values, refuse_output_over_input
from opreid_bench.errors import OpreidError

if TYPE_CHECKING:
    from opreid_bench.evaluation.evaluator import EvaluationReport
    from opreid_bench.evaluation.features import FeatureSet


def _load_input(features: Path | None, weights: Path | None = None, method: str | None = None,
                dataset: str | None = None, root: Path | None = None, device: str | None = None,
                onnx_model: Path | None = None, onnx_kwargs: dict | None = None, zoo: str | None = None,
                options: dict[str, str] | None = None, zoo_size: tuple[int, int] | None = None,
                ) -> tuple[FeatureSet, FeatureSet, dict, str]:
    """Exactly one input mode -> (query, gallery, attrs, source description)."""
    if zoo is not None:  # a model-zoo checkpoint, rebuilt here with the zoo's names (opreid_bench.modeling.zoo)
        if weights is None or features is not None or onnx_model is not None:
            raise OpreidError("evaluate --zoo ARCH takes the checkpoint with --weights FILE (and no --features/--onnx)")
        if dataset is None or root is None:
            raise OpreidError("evaluate --zoo needs --dataset NAME and --root PATH")
        from opreid_bench.engine.zoo_extract import zoo_feature_sets

        query, gallery, attrs = zoo_feature_sets(zoo, weights, dataset, root, device=device or "cpu", options=options,
                                                 input_size=zoo_size)
        return query, gallery, attrs, f"{zoo} on {dataset}"
    modes = {"--features": features, "--weights": weights, "--onnx": onnx_model}
    given = [name for name, value in modes.items() if value is not None]
    if len(given) != 1:
        raise OpreidError(f"evaluate needs exactly one input ({' or '.join(modes)}), got "
                          f"{', '.join(given) if given else 'none'}; see `opreid-bench evaluate --help`")
    if weights is not None:  # a trained model: extract features (ME applied) with the dataset's protocol
        if dataset is None or root is None:
            raise OpreidError("evaluate --weights needs --dataset NAME and --root PATH")
        from opreid_bench.engine.extract import model_feature_sets

        query, gallery, attrs = model_feature_sets(weights, dataset, root, method=method, device=device or "cpu",
                                                    options=options)
        return query, gallery, attrs, f"{attrs['method']} on {dataset}"
    if onnx_model is not None:  # any ONNX model through onnxruntime (opreid_bench.engine.onnx_runner)
        if dataset is None or root is None:
            raise OpreidError("evaluate --onnx needs --dataset NAME and --root PATH")
        from opreid_bench.engine.onnx_runner import onnx_feature_sets

        query, gallery, attrs = onnx_feature_sets(onnx_model, dataset, root, device=device or "cpu", options=options,
                                                  **(onnx_kwargs or {}))
        return query, gallery, attrs, f"{onnx_model} on {dataset}"
    from opreid_bench.evaluation.features import read_feature_file

    unused = [flag for flag, value in (("--dataset", dataset), ("--root", root), ("--method", method),
                                       ("--option", options)) if value]
    if unused:
        raise OpreidError(f"evaluate --features reads query and gallery from the file; {', '.join(unused)} "
                          "would be ignored: leave them out (they go with --weights, --onnx or --zoo)")
    query, gallery, attrs = read_feature_file(features)
    return query, gallery, attrs, str(features)


def run_evaluation(query: FeatureSet, gallery: FeatureSet, *, metric: str, junk: str, max_rank: int,
                   bootstrap: int, seed: int, device: str | None = None, progress: bool = True
                   ) -> EvaluationReport:
    """Evaluate with the command's options (progress bar on stderr)."""
    from opreid_bench.evaluation.evaluator import evaluate_features

    return evaluate_features(query, gallery, metric=metric, junk=junk, max_rank=max_rank, device=device,
                             bootstrap=bootstrap, seed=seed, progress=progress)


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100.0 * x:.2f}"


def print_report(report: EvaluationReport, json_out: bool, title: str = "evaluation",
                 settings: dict | None = None) -> None:
    """Exactly one JSON object on stdout (``json_out``) or a rich table: overall row plus breakdown rows.
    ``settings`` (how the ranking was made: metric, junk rule, re-ranking) go into the JSON object too."""
    data = {**report.to_dict(), **(settings or {})}
    if json_out:
        click.echo(json.dumps(data))
        return
    from rich.console import Console
    from rich.table import Table

    rr = (settings or {}).get("rerank")
    reranked = f", re-ranked k1={rr['k1']} k2={rr['k2']} lambda={rr['lambda']}" if rr else ""
    table = Table(title=f"{title} ({report.metric} distance, junk={report.junk}{reranked}, "
                        f"{report.num_query} queries x {report.num_gallery} gallery)")
    table.add_column("subset", no_wrap=True)
    table.add_column("valid", justify="right")
    table.add_column("skipped", justify="right")
    for col in ("R-1 %", "R-5 %", "R-10 %", "mAP %", "mINP %"):
        table.add_column(col, justify="right")
    ci = data.get("ci")
    if ci:
        table.add_column(f"R-1 {100 * ci['level']:.0f}% CI", justify="right", no_wrap=True)
        table.add_column(f"mAP {100 * ci['level']:.0f}% CI", justify="right", no_wrap=True)
        if "mINP" in ci:
            table.add_column(f"mINP {100 * ci['level']:.0f}% CI", justify="right", no_wrap=True)
    rows = [("overall", data), *data.get("breakdown", {}).items()]
    for name, m in rows:
        cells = [name, str(m["num_valid_queries"]), str(m["num_skipped_queries"])]
        cells += [_pct(m[k]) for k in ("rank1", "rank5", "rank10", "mAP", "mINP")]
        if ci:
            keys = [k for k in ("rank1", "mAP", "mINP") if k in ci]
            cells += [f"{_pct(ci[k][0])}-{_pct(ci[k][1])}" if name == "overall" else "" for k in keys]
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # piped or redirected: do not squeeze the table into 80 columns
        console = Console(width=max(console.width, 140))
    console.print(table)
    if ci:
        click.echo(f"CIs: {ci['resamples']} bootstrap resamples of the valid queries, seed {ci['seed']}", err=True)


@click.command("evaluate")
@click.option("--features", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HDF5 feature file with /query and /gallery groups (layout: docs/reference/file-formats.md).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A checkpoint of `opreid-bench train` (RUN_DIR/model.pt) instead of --features; needs --dataset "
                   "and --root.")
@click.option("--onnx", "onnx_model", type=click.Path(dir_okay=False, path_type=Path), default=None, help=ONNX_HELP)
@onnx_preprocessing_options
@click.option("--zoo", default=None, metavar="ZOO:SPEC", help=ZOO_HELP)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also record the result as a leaderboard run: with --onnx, RUN_DIR/run.json (name, model file, "
                   "preprocessing, metrics); with --weights RUN/model.pt, RUN itself (the run.json `train` wrote "
                   "gains this dataset's results). `opreid-bench leaderboard --runs RUN_DIR` shows it.")
@click.option("--name", default=None, help="With --run-dir: the model's name on the leaderboard (default: the "
                                            "model's metadata method, else the file name).")
@click.option("--method", default=None, help="With --weights: refuse a checkpoint of another method.")
@click.option("--dataset", default=None,
              help="With --weights, --onnx or --zoo: dataset loader name; its protocol gives the junk rule.")
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help="With --weights, --onnx or --zoo: the dataset folder.")
@click.option("--option", "dataset_option", multiple=True, metavar="KEY=VALUE",
              help="With --weights, --onnx or --zoo: a dataset loader option (e.g. pattern=REGEX for a folder).")
@click.option("--metric", type=click.Choice(["euclidean", "cosine"]), default=None,
              help="Distance between features. Default: the file's (or method's) 'metric', else euclidean.")
@click.option("--junk", type=click.Choice(["market", "none"]), default=None,
              help="Junk rule: 'market' drops same-pid same-camera gallery items, 'none' drops nothing (cross-set "
                   "protocols). Default: the file's 'junk' attribute, else market.")
@click.option("--max-rank", type=click.IntRange(min=1), default=50, show_default=True, help="Length of the CMC curve.")
@click.option("--bootstrap", type=click.IntRange(min=0), default=0, show_default=True,
              help="Bootstrap resamples of the queries for 95% CIs of rank-1, mAP and mINP (0: off).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the bootstrap resampling.")
@click.option("--device", default=None, help="Torch device for distances (default: cuda when available, else cpu).")
@click.option("--rerank", is_flag=True, help="k-reciprocal re-ranking (Zhong et al. 2017) before ranking.")
@click.option("--k1", type=click.IntRange(min=1), default=20, show_default=True, help="With --rerank: k1.")
@click.option("--k2", type=click.IntRange(min=1), default=6, show_default=True, help="With --rerank: k2.")
@click.option("--lambda", "lambda_value", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True,
              help="With --rerank: weight of the original distance.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON report to this file (atomically; replaces only a report evaluate wrote).")
@click.option("--json", "json_out", is_flag=True, help="Print exactly one JSON object on stdout.")
def evaluate(features: Path | None, weights: Path | None, onnx_model: Path | None, input_size: str | None,
             mean: str | None, std: str | None, channel_order: str | None, onnx_output: str | None, batch_size: int,
             zoo: str | None, run_dir: Path | None, name: str | None, method: str | None, dataset: str | None,
             root: Path | None, dataset_option: tuple[str, ...], metric: str | None, junk: str | None, max_rank: int,
             bootstrap: int, seed: int,
             device: str | None, rerank: bool, k1: int, k2: int, lambda_value: float, out: Path | None,
             json_out: bool) -> None:
    """Rank-1/5/10, mAP and mINP of query vs gallery features (eval_market1501 semantics).

    When query and gallery carry 'occluded' flags, rows for occluded / holistic queries and for the gallery
    restricted to holistic / occluded items are added. Metrics in --json are fractions in [0, 1], with how the
    ranking was made: metric, junk and rerank (its k1, k2 and lambda, or null); the --out file adds written_by and
    input (the feature file, or the model and dataset).

    \b
    Examples:
      opreid-bench evaluate --features feats.h5
      opreid-bench evaluate --features feats.h5 --metric cosine --junk none --json
      opreid-bench evaluate --features feats.h5 --bootstrap 1000 --seed 0 --out report.json
      opreid-bench evaluate --features feats.h5 --rerank --k1 20 --k2 6 --lambda 0.3 --json
      opreid-bench evaluate --method ours --weights runs/ours/model.pt --dataset partial_reid --root data --json
      opreid-bench evaluate --weights runs/ours/model.pt --dataset folder --root my_crops \\
          --option 'pattern=(?P<pid>\\d+)_c(?P<camid>\\d+)'
      opreid-bench evaluate --onnx ours.onnx --dataset partial_reid --root data --run-dir runs/ours-onnx --json
      opreid-bench evaluate --weights runs/ours/model.pt --dataset occluded_reid --root data --run-dir runs/ours
      opreid-bench evaluate --onnx their.onnx --input-size 256x128 --mean 0.485,0.456,0.406 \\
          --std 0.229,0.224,0.225 --dataset partial_reid --root data
      opreid-bench evaluate --zoo torchreid:osnet_x1_0 --weights osnet_x1_0_market.pth --dataset partial_reid \\
          --root data --json
      opreid-bench evaluate --zoo fastreid:configs/DukeMTMC/sbs_R50-ibn.yml --weights model_final.pth \\
          --dataset occluded_duke --root data
    """
    from opreid_bench.evaluation.evaluator import REPORT_WRITER
    from opreid_bench.outputs import foreign_entries, json_written_by, refuse_foreign_file

    refuse_output_over_input(out, "--out", {"--features": features, "--weights": weights, "--onnx": onnx_model})
    if out is not None:
        refuse_foreign_file(out, "evaluate", lambda p: json_written_by(p, REPORT_WRITER))
    own_run = run_dir is not None and weights is not None and zoo is None
    if run_dir is not None and ((onnx_model is None and not own_run) or rerank):
        raise OpreidError("--run-dir records an --onnx evaluation, or a --weights RUN/model.pt one into RUN, without "
                          "--rerank (a --zoo checkpoint gets a run through `export --zoo ... --out model.onnx`, then "
                          "`evaluate --onnx model.onnx --run-dir ...`)")
    if own_run:  # refused before any feature is computed, not after
        from opreid_bench.engine.run_results import check_run_record

        if name is not None:
            raise OpreidError("--name names an --onnx run; a trained run keeps its method's name")
        if metric is not None or junk is not None:
            raise OpreidError("--run-dir records a run's result as the leaderboard compares them: with the run's own "
                              "metric and the dataset's junk rule; leave out --metric and --junk")
        check_run_record(run_dir, weights)
    elif run_dir is not None:
        from opreid_bench.engine.onnx_runner import RUN_WRITER

        refuse_foreign_file(run_dir / "run.json", "evaluate", lambda p: json_written_by(p, RUN_WRITER), "--run-dir")
        if foreign := foreign_entries(run_dir, lambda p: p.name == "run.json"):
            raise OpreidError(f"--run-dir {run_dir} holds files `evaluate` did not write (e.g. {foreign[0]}); a run "
                              "folder holds only its run.json: choose another --run-dir")
    zoo_size = zoo_input_size(zoo, onnx_model, input_size, mean, std, channel_order, onnx_output)
    onnx_kwargs = None
    if onnx_model is not None:
        onnx_kwargs = {"given": preprocessing_from_options(input_size, mean, std, channel_order, onnx_output),
                       "batch_size": batch_size}
    if device is not None:
        from opreid_bench.evaluation.distances import resolve_device

        resolve_device(device)  # an unknown device, or CUDA without one: one line before any work
    query, gallery, attrs, source = _load_input(features, weights, method, dataset, root, device, onnx_model,
                                                onnx_kwargs, zoo, parse_key_values(dataset_option), zoo_size)
    if metric is None:
        metric = str(attrs.get("metric", "euclidean"))
        if metric not in ("euclidean", "cosine"):
            raise OpreidError(f"{source}: attribute metric={metric!r} is not 'euclidean' or 'cosine'; pass --metric")
    if junk is None:
        junk = str(attrs.get("junk", "market"))
        if junk not in ("market", "none"):
            raise OpreidError(f"{source}: attribute junk={junk!r} is not 'market' or 'none'; pass --junk")
    from opreid_bench.errors import EvaluationError

    try:
        if rerank:  # k-reciprocal re-ranking, then the same ranking metrics (opreid_bench.evaluation.rerank)
            from opreid_bench.evaluation.rerank import rerank_report

            report = rerank_report(query, gallery, metric=metric, junk=junk, max_rank=max_rank, k1=k1, k2=k2,
                                   lambda_value=lambda_value, bootstrap=bootstrap, seed=seed, device=device)
        else:
            report = run_evaluation(query, gallery, metric=metric, junk=junk, max_rank=max_rank, bootstrap=bootstrap,
                                    seed=seed, device=device)
    except EvaluationError as exc:  # name what was evaluated
        raise EvaluationError(f"{source}: {exc}") from None
    settings = {"metric": metric, "junk": junk,
                "rerank": {"k1": k1, "k2": k2, "lambda": lambda_value} if rerank else None}
    if out is not None:
        from opreid_bench.atomic import atomic_write_text

        record = {"written_by": REPORT_WRITER, "input": source, **settings, **report.to_dict()}
        atomic_write_text(out, json.dumps(record, indent=2) + "\n")
        click.echo(f"wrote {out}", err=True)
    if own_run:
        from opreid_bench.engine.extract import metrics_dict
        from opreid_bench.engine.run_results import record_run_result

        path = record_run_result(run_dir, dataset=str(attrs["dataset"]), options=str(attrs.get("dataset_options", "")),
                                 metrics=metrics_dict(report), metric=metric, junk=junk, root=str(root))
        click.echo(f"wrote {path}", err=True)
    elif run_dir is not None:
        from opreid_bench.engine.extract import metrics_dict
        from opreid_bench.engine.onnx_runner import write_onnx_run

        attrs = {**attrs, "metric": metric, "junk": junk}
        path = write_onnx_run(run_dir, name=name or str(attrs["method"]), attrs=attrs, metrics=metrics_dict(report))
        click.echo(f"wrote {path}", err=True)
    print_report(report, json_out, title=Path(source).name, settings=settings)
    if dataset is not None and features is None:
        echo_dataset_notes(dataset, root, parse_key_values(dataset_option))


COMMANDS = [evaluate]
