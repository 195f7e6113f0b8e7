"""`opreid-bench search`: the ranked gallery of every query as a CSV, for retrieval demos and tracking pipelines.

Exact by default (chunked top-k, bounded memory for any gallery size); ``--rerank`` applies k-reciprocal
re-ranking first; ``--ann`` uses a faiss index (the ``[faiss]`` extra) for the top-k lists, or for re-ranking's
neighbour lists when combined with ``--rerank``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from opreid_bench.cli.options import refuse_output_over_input
from opreid_bench.errors import EvaluationError, OpreidError

COLUMNS = ("query_index", "query_path", "rank", "gallery_index", "gallery_path", "distance", "same_pid")


def write_results_csv(out: Path, indices, distances, q_pids, g_pids, q_paths, g_paths) -> None:  # noqa: ANN001
    """Write one row per (query, rank) to ``out`` atomically; ``rank`` is 1-based, ``same_pid`` is 1 or 0."""
    from opreid_bench.atomic import atomic_path

    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for qi in range(indices.shape[0]):
            q_path = q_paths[qi] if q_paths is not None else ""
            for r in range(indices.shape[1]):
                gi = int(indices[qi, r])
                writer.writerow((qi, q_path, r + 1, gi, g_paths[gi] if g_paths is not None else "",
                                 f"{float(distances[qi, r]):.6g}", int(q_pids[qi] == g_pids[gi])))


def _print_preview(indices, distances, q_pids, g_pids, q_paths, g_paths, title: str, rows: int = 5) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.table import Table

    show = min(5, indices.shape[1])
    table = Table(title=title)
    table.add_column("query", overflow="fold", min_width=14)  # wrapped, never cut to "…" on a narrow terminal
    for r in range(show):
        table.add_column(f"rank {r + 1}", no_wrap=True)
    for qi in range(min(rows, indices.shape[0])):
        name = Path(q_paths[qi]).name if q_paths is not None else str(qi)
        cells = [f"{name} (pid {q_pids[qi]})"]
        for r in range(show):
            gi = int(indices[qi, r])
            mark = "[green]+[/green]" if q_pids[qi] == g_pids[gi] else "[red]-[/red]"
            cells.append(f"{mark} {g_pids[gi]} @ {float(distances[qi, r]):.3f}")
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # piped or logged: rich would assume 80 columns and cut the table
        console = Console(width=160)
    console.print(table)


def _ranked(query, gallery, topk, metric, rerank, k1, k2, lambda_value, ann_cfg, device, err):  # noqa: ANN001, ANN202
    """The top-k lists (exact, re-ranked or approximate) with a status line on stderr."""
    nq, ng = len(query), len(gallery)
    with err.status(f"searching {nq} queries in {ng} gallery items ({metric}{', re-ranked' if rerank else ''})"):
        if rerank:
            from opreid_bench.evaluation.rerank import rerank_features
            from opreid_bench.evaluation.retrieval import topk_from_distmat

            dist = rerank_features(query.features, gallery.features, metric=metric, k1=k1, k2=k2,
                                   lambda_value=lambda_value, device=device, ann=ann_cfg)
            return topk_from_distmat(dist, topk)
        if ann_cfg is not None:
            from opreid_bench.evaluation.ann import ann_topk

            return ann_topk(query.features, gallery.features, topk, metric=metric, ann=ann_cfg)
        from opreid_bench.evaluation.retrieval import topk_search

        return topk_search(query.features, gallery.features, topk, metric=metric, device=device)


@click.command("search")
@click.option("--features", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HDF5 feature file with /query and /gallery groups (layout: docs/reference/file-formats.md).")
@click.option("--topk", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many gallery items to list per query.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV to write (atomically): query_index, query_path, rank, gallery_index, gallery_path, distance, "
                   "same_pid.")
@click.option("--metric", type=click.Choice(["euclidean", "cosine"]), default=None,
              help="Distance between features. Default: the file's 'metric' attribute, else euclidean.")
@click.option("--rerank", is_flag=True, help="Apply k-reciprocal re-ranking (Zhong et al. 2017) before ranking.")
@click.option("--k1", type=click.IntRange(min=1), default=20, show_default=True, help="Re-ranking k1.")
@click.option("--k2", type=click.IntRange(min=1), default=6, show_default=True, help="Re-ranking k2.")
@click.option("--lambda", "lambda_value", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True,
              help="Re-ranking weight of the original distance.")
@click.option("--ann", type=click.Choice(["flat", "ivf"]), default=None,
              help="Approximate search with a faiss index (needs the [faiss] extra).")
@click.option("--nprobe", type=click.IntRange(min=1), default=32, show_default=True, help="IVF cells probed (--ann ivf).")
@click.option("--device", default=None, help="Torch device (default: cuda when available, else cpu).")
@click.option("--json", "json_out", is_flag=True, help="Print exactly one JSON object (a summary) on stdout.")
def search(features: Path, topk: int, out: Path, metric: str | None, rerank: bool, k1: int, k2: int,
           lambda_value: float, ann: str | None, nprobe: int, device: str | None, json_out: bool) -> None:
    """Rank the gallery for every query and write the top-k lists to a CSV.

    Ranks are 1-based; items at equal distance keep gallery order; every gallery item can be listed (no junk
    removal: this is retrieval, not evaluation). Distances are in the chosen metric, or the re-ranked distance
    with --rerank. same_pid is 1 when the gallery item has the query's identity.

    \b
    Examples:
      opreid-bench search --features feats.h5 --topk 10 --out results.csv
      opreid-bench search --features feats.h5 --topk 20 --metric cosine --rerank --out reranked.csv
      opreid-bench search --features feats.h5 --topk 10 --ann ivf --nprobe 64 --out approx.csv --json
    """
    import numpy as np
    from rich.console import Console

    from opreid_bench.evaluation.features import read_feature_file
    from opreid_bench.evaluation.retrieval import resolve_device

    refuse_output_over_input(out, "--out", {"--features": features})
    from opreid_bench.outputs import file_starts_with, refuse_foreign_file

    refuse_foreign_file(out, "search", lambda p: file_starts_with(p, ",".join(COLUMNS)))
    if device is not None:
        resolve_device(device)  # an unknown device, or CUDA without one: one line before any work
    query, gallery, attrs = read_feature_file(features)
    if metric is None:
        metric = str(attrs.get("metric", "euclidean"))
        if metric not in ("euclidean", "cosine"):
            raise OpreidError(f"{features}: attribute metric={metric!r} is not 'euclidean' or 'cosine'; pass --metric")
    ann_cfg = None
    if ann is not None:
        from opreid_bench.evaluation.ann import AnnConfig, require_faiss

        require_faiss()
        ann_cfg = AnnConfig(kind=ann, nprobe=nprobe)
    err = Console(stderr=True)
    nq, ng = len(query), len(gallery)
    try:
        result = _ranked(query, gallery, topk, metric, rerank, k1, k2, lambda_value, ann_cfg, device, err)
    except EvaluationError as exc:  # e.g. distances that overflow to inf: name the file, write nothing
        raise EvaluationError(f"{features}: {exc}") from None
    q_pids, g_pids = np.asarray(query.pids), np.asarray(gallery.pids)
    write_results_csv(out, result.indices, result.distances, q_pids, g_pids, query.paths, gallery.paths)
    hit1 = float(np.mean(q_pids == g_pids[result.indices[:, 0]]))
    summary = {
        "out": str(out),
        "num_query": nq,
        "num_gallery": ng,
        "topk": int(result.indices.shape[1]),
        "metric": metric,
        "rerank": bool(rerank),
        "ann": ann,
        "rows": int(result.indices.size),
        "top1_same_pid": hit1,
    }
    click.echo(f"wrote {out} ({summary['rows']} rows)", err=True)
    if json_out:
        click.echo(json.dumps(summary))
        return
    _print_preview(result.indices, result.distances, q_pids, g_pids, query.paths, gallery.paths,
                   title=f"{features.name}: top-{min(5, topk)} of the first queries (+ same pid), "
                         f"top-1 same pid {100 * hit1:.1f}%")


COMMANDS = [search]
