#!/usr/bin/env python
"""Speed of the evaluator against a full sort, at Market-1501 scale (3,368 x 15,913), in the same run.

The standard ``eval_market1501`` pays for ``np.argsort(distmat, axis=1)``; the target is that our metrics take at
most one fifth of that sort alone. The distance matrix is realistic: Market-like pids (~750 identities over 6
cameras plus pid-0 distractors) and float32 distances between clustered random features (mAP around 0.78 at the default noise).
The result is also checked (untimed) against a straightforward argsort-based implementation on the same matrix.

\b
Examples:
  python benchmarks/bench_eval.py
  python benchmarks/bench_eval.py --json --queries 3368 --gallery 15913 --seed 0
"""

from __future__ import annotations

import json
import sys
import time

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from opreid_bench.evaluation.distances import compute_distances
from opreid_bench.evaluation.metrics import evaluate_distmat

MARKET_DISTRACTOR_SHARE = 2793 / 15913  # pid-0 distractors in Market-1501's gallery


def market_like(num_query: int, num_gallery: int, seed: int, dim: int = 64, noise: float = 0.9
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A Market-like (distmat float32, q_pids, g_pids, q_camids, g_camids): 751 ids, 6 cameras, distractors."""
    rng = np.random.default_rng(seed)
    num_ids = 751
    centers = rng.standard_normal((num_ids + 1, dim)).astype(np.float32)
    cam_bias = 0.35 * rng.standard_normal((7, dim)).astype(np.float32)
    num_distr = int(round(num_gallery * MARKET_DISTRACTOR_SHARE))
    g_pids = np.concatenate([np.zeros(num_distr, np.int64), rng.integers(1, num_ids + 1, num_gallery - num_distr)])
    g_pids = g_pids[rng.permutation(num_gallery)]
    g_cams = rng.integers(1, 7, num_gallery)
    q_pids = rng.integers(1, num_ids, num_query)  # 750 query identities, as in Market
    q_cams = rng.integers(1, 7, num_query)

    def feats(pids: np.ndarray, cams: np.ndarray) -> np.ndarray:
        base = centers[pids].copy()
        distractor = pids == 0
        base[distractor] = rng.standard_normal((int(distractor.sum()), dim))
        return base + cam_bias[cams] + noise * rng.standard_normal(base.shape).astype(np.float32)

    qf, gf = feats(q_pids, q_cams), feats(g_pids, g_cams)
    distmat = compute_distances(qf, gf, "euclidean", device="cpu")
    return distmat, q_pids, g_pids, q_cams, g_cams


def argsort_reference(order: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_cams: np.ndarray,
                      g_cams: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Straightforward eval_market1501 on a precomputed stable order: per-query first hit, AP and INP."""
    first, aps, inps = [], [], []
    for i in range(order.shape[0]):
        o = order[i]
        match = g_pids[o] == q_pids[i]
        raw = match[~(match & (g_cams[o] == q_cams[i]))]
        if not raw.any():
            continue
        cmc = np.cumsum(raw)
        pos = np.flatnonzero(raw)
        first.append(pos[0])
        aps.append(float(np.sum(cmc[pos] / (pos + 1.0)) / pos.size))
        inps.append(cmc[pos[-1]] / (pos[-1] + 1.0))
    return np.asarray(first), np.asarray(aps), np.asarray(inps)


@click.command()
@click.option("--queries", default=3368, show_default=True)
@click.option("--gallery", default=15913, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--noise", default=0.9, show_default=True,
              help="Feature noise around identity centres: 0.9 gives mAP ~0.78, 2.0 a near-random model (mAP ~0.02).")
@click.option("--repeat", default=3, show_default=True, help="Time each side this many times; report the minimum.")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object {ours_s, argsort_s, ratio}.")
def main(queries: int, gallery: int, seed: int, noise: float, repeat: int, json_out: bool) -> None:
    """Time np.argsort(distmat, axis=1) and evaluate_distmat on the same Market-scale matrix."""
    err = Console(stderr=True)
    err.print(f"building a {queries} x {gallery} Market-like distance matrix (seed {seed}) ...")
    distmat, q_pids, g_pids, q_cams, g_cams = market_like(queries, gallery, seed, noise=noise)

    argsort_s, ours_s, order, result = [], [], None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        order = np.argsort(distmat, axis=1)
        argsort_s.append(time.perf_counter() - t0)
        del order
        t0 = time.perf_counter()
        result = evaluate_distmat(distmat, q_pids, g_pids, q_cams, g_cams, junk="market")
        ours_s.append(time.perf_counter() - t0)
    assert result is not None

    err.print("checking against an argsort-based implementation (untimed) ...")
    order = np.argsort(distmat, axis=1, kind="stable")
    first, aps, inps = argsort_reference(order, q_pids, g_pids, q_cams, g_cams)
    equal = (np.array_equal(first, result.first_hit) and np.allclose(aps, result.ap, rtol=0, atol=1e-12)
             and np.allclose(inps, result.inp, rtol=0, atol=1e-12))
    if not equal:
        err.print("[red]MISMATCH between evaluate_distmat and the argsort reference[/red]")

    out = {"ours_s": min(ours_s), "argsort_s": min(argsort_s), "ratio": min(ours_s) / min(argsort_s)}
    if json_out:
        click.echo(json.dumps(out))
    else:
        table = Table(title=f"evaluator speed, {queries} x {gallery} (min of {repeat})")
        for col in ("np.argsort (s)", "evaluate_distmat (s)", "ratio (target <= 0.2)", "equal to reference",
                    "rank-1", "mAP", "mINP"):
            table.add_column(col, justify="right")
        m = result.to_dict()
        table.add_row(f"{out['argsort_s']:.3f}", f"{out['ours_s']:.3f}", f"{out['ratio']:.3f}", str(equal),
                      f"{m['rank1']:.4f}", f"{m['mAP']:.4f}", f"{m['mINP']:.4f}")
        console = Console()
        Console(width=max(console.width, 120)).print(table) if not console.is_terminal else console.print(table)
    sys.exit(0 if equal else 1)


if __name__ == "__main__":
    main()
