"""Evaluation and retrieval at large gallery sizes: exact CMC/mAP/mINP in bounded memory, and faiss recall.

Usage:
  python benchmarks/bench_scale.py                      # 2,000 queries x 1,000,000 gallery, 256-d
  python benchmarks/bench_scale.py --gallery 200000     # smaller
  python benchmarks/bench_scale.py --json               # one JSON object on stdout

Phases, each in its own subprocess so that its peak memory (``ru_maxrss``, features included) is its own:

1. ``evaluate``: ``evaluate_features`` streams over query chunks (exact, no q x g matrix). Its per-query AP/INP
   and first-hit ranks are checked on a few queries against a brute-force full-argsort evaluation.
2. ``topk``: exact chunked top-k search (:func:`opreid_bench.evaluation.retrieval.topk_search`).
3. ``ann`` (when faiss is installed): an IVF index over the gallery; recall@k of its top-k lists against the exact
   ones of phase 2, on the first ``--ann-queries`` queries.

Synthetic data, generated in chunks straight into one float32 array (1M x 256 = 1 GB): identities with ~20
gallery images each, 6 cameras, features = identity centre + noise; seeded, so every phase sees the same data.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

GEN_CHUNK = 65536
NOISE = 1.4  # per-dimension noise around unit-variance identity centres: hard enough that mAP is far from 1


def make_data(nq: int, ng: int, dim: int, seed: int) -> dict[str, np.ndarray]:
    """Queries and gallery with pids/camids; the gallery is filled chunk by chunk (no float64 temporaries)."""
    rng = np.random.default_rng(seed)
    num_ids = max(1, ng // 20)
    centers = rng.standard_normal((num_ids, dim), dtype=np.float32)
    g_pids = rng.integers(0, num_ids, ng)
    g_cams = rng.integers(0, 6, ng)
    gf = np.empty((ng, dim), dtype=np.float32)
    noise = np.empty((GEN_CHUNK, dim), dtype=np.float32)
    for s in range(0, ng, GEN_CHUNK):
        e = min(s + GEN_CHUNK, ng)
        rng.standard_normal(out=noise[: e - s], dtype=np.float32)
        np.multiply(noise[: e - s], NOISE, out=gf[s:e])
        gf[s:e] += centers[g_pids[s:e]]
    q_pids = g_pids[rng.integers(0, ng, nq)]  # every query identity has gallery images
    q_cams = rng.integers(0, 6, nq)
    qf = centers[q_pids] + NOISE * rng.standard_normal((nq, dim), dtype=np.float32)
    return {"qf": qf, "gf": gf, "q_pids": q_pids, "g_pids": g_pids, "q_cams": q_cams, "g_cams": g_cams}


def brute_force(dist_row: np.ndarray, qp: int, qc: int, g_pids: np.ndarray, g_cams: np.ndarray) -> tuple:
    """First-hit rank, AP and INP of one query by a full stable argsort (eval_market1501, junk = same pid & cam)."""
    order = np.argsort(dist_row, kind="stable")
    keep = ~((g_pids[order] == qp) & (g_cams[order] == qc))
    matches = (g_pids[order] == qp)[keep]
    hits = np.flatnonzero(matches)
    if hits.size == 0:
        return None
    precision = np.arange(1, hits.size + 1) / (hits + 1)
    return int(hits[0]), float(precision.mean()), float(hits.size / (hits[-1] + 1))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def phase_evaluate(args: argparse.Namespace) -> dict:
    from opreid_bench.evaluation.distances import compute_distances
    from opreid_bench.evaluation.evaluator import evaluate_features
    from opreid_bench.evaluation.features import FeatureSet

    d = make_data(args.queries, args.gallery, args.dim, args.seed)
    query = FeatureSet(d["qf"], d["q_pids"], d["q_cams"])
    gallery = FeatureSet(d["gf"], d["g_pids"], d["g_cams"])
    data_mb = _peak_mb()
    t0 = time.perf_counter()
    report = evaluate_features(query, gallery, metric="euclidean", junk="market", max_rank=50)
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    r = report.overall
    # exactness spot check: a few queries against a brute-force full argsort
    check = np.linspace(0, args.queries - 1, num=min(args.check_queries, args.queries)).astype(int)
    rows = compute_distances(d["qf"][check], d["gf"], "euclidean")
    pos = {int(q): i for i, q in enumerate(r.valid_query_index)}
    worst = 0.0
    checked = 0
    for row, q in zip(rows, check, strict=True):
        bf = brute_force(row, d["q_pids"][q], d["q_cams"][q], d["g_pids"], d["g_cams"])
        if bf is None:
            assert int(q) not in pos
            continue
        i = pos[int(q)]
        if bf[0] != r.first_hit[i]:
            worst = float("inf")
        worst = max(worst, abs(bf[1] - r.ap[i]), abs(bf[2] - r.inp[i]))
        checked += 1
    return {"seconds": seconds, "peak_mb": peak, "data_mb": data_mb, "metrics": r.to_dict(),
            "check_queries": checked, "check_max_abs_diff": worst}


def phase_topk(args: argparse.Namespace) -> dict:
    from opreid_bench.evaluation.retrieval import topk_search

    d = make_data(args.queries, args.gallery, args.dim, args.seed)
    qf = d["qf"][: args.ann_queries]
    t0 = time.perf_counter()
    res = topk_search(qf, d["gf"], args.k)
    seconds = time.perf_counter() - t0
    np.save(args.scratch, res.indices)
    return {"seconds": seconds, "peak_mb": _peak_mb(), "queries": int(qf.shape[0])}


def phase_ann(args: argparse.Namespace) -> dict:
    from opreid_bench.evaluation.ann import AnnConfig, AnnIndex, recall_at_k

    d = make_data(args.queries, args.gallery, args.dim, args.seed)
    qf = d["qf"][: args.ann_queries]
    cfg = AnnConfig("ivf", nlist=args.nlist, nprobe=args.nprobe, seed=args.seed, train_size=args.train_size)
    t0 = time.perf_counter()
    index = AnnIndex(d["gf"], "euclidean", cfg)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, idx = index.search(qf, args.k)
    search = time.perf_counter() - t0
    exact = np.load(args.scratch)
    return {"build_s": build, "search_s": search, "peak_mb": _peak_mb(), "recall_at_k": recall_at_k(idx, exact),
            "nlist": args.nlist, "nprobe": args.nprobe}


def run_phase(name: str, argv: list[str]) -> dict:
    res = subprocess.run([sys.executable, __file__, *argv, "--phase", name], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        raise SystemExit(f"phase {name} failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--gallery", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=10, help="top-k for the retrieval and ANN recall phases")
    p.add_argument("--ann-queries", type=int, default=500, help="queries used for the top-k / ANN phases")
    p.add_argument("--nlist", type=int, default=1024, help="IVF cells")
    p.add_argument("--nprobe", type=int, default=32, help="IVF cells probed per query")
    p.add_argument("--train-size", type=int, default=65536, help="IVF k-means training sample")
    p.add_argument("--check-queries", type=int, default=8, help="queries re-evaluated by brute force")
    p.add_argument("--no-ann", action="store_true", help="skip the faiss phase")
    p.add_argument("--phase", choices=["evaluate", "topk", "ann"], help=argparse.SUPPRESS)
    p.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        fn = {"evaluate": phase_evaluate, "topk": phase_topk, "ann": phase_ann}[args.phase]
        print(json.dumps(fn(args)))
        return

    import tempfile
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from opreid_bench.evaluation.ann import faiss_available

    err = Console(stderr=True)
    base = ["--queries", str(args.queries), "--gallery", str(args.gallery), "--dim", str(args.dim), "--seed",
            str(args.seed), "--k", str(args.k), "--ann-queries", str(args.ann_queries), "--nlist", str(args.nlist),
            "--nprobe", str(args.nprobe), "--train-size", str(args.train_size), "--check-queries",
            str(args.check_queries)]
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        scratch = str(Path(tmp) / "exact_topk.npy")
        with err.status(f"evaluate: {args.queries} x {args.gallery} ({args.dim}-d)"):
            ev = run_phase("evaluate", base)
        with err.status(f"exact top-{args.k} for {args.ann_queries} queries"):
            tk = run_phase("topk", [*base, "--scratch", scratch])
        ann = None
        if not args.no_ann and faiss_available():
            with err.status(f"faiss IVF{args.nlist} (nprobe {args.nprobe})"):
                ann = run_phase("ann", [*base, "--scratch", scratch])
    result = {
        "queries": args.queries,
        "gallery": args.gallery,
        "dim": args.dim,
        "evaluate_s": round(ev["seconds"], 2),
        "evaluate_peak_mb": round(ev["peak_mb"], 1),
        "data_mb": round(ev["data_mb"], 1),
        "peak_under_4gb": ev["peak_mb"] < 4096,
        "metrics": ev["metrics"],
        "exact_check_queries": ev["check_queries"],
        "exact_check_max_abs_diff": ev["check_max_abs_diff"],
        "topk_k": args.k,
        "topk_queries": tk["queries"],
        "topk_s": round(tk["seconds"], 2),
        "topk_peak_mb": round(tk["peak_mb"], 1),
        "ann": None if ann is None else {k: (round(v, 4) if isinstance(v, float) else v) for k, v in ann.items()},
        "peak_memory_method": "ru_maxrss of a separate subprocess per phase (features included)",
    }
    if args.json:
        print(json.dumps(result))
        return
    table = Table(title=f"{args.queries} queries x {args.gallery:,} gallery, {args.dim}-d (euclidean)")
    for col in ("phase", "seconds", "peak RSS MB", "result"):
        table.add_column(col)
    m = ev["metrics"]
    table.add_row("evaluate_features (exact, streamed)", f"{ev['seconds']:.1f}", f"{ev['peak_mb']:.0f}",
                  f"R1 {100 * m['rank1']:.2f}  mAP {100 * m['mAP']:.2f}  mINP {100 * m['mINP']:.2f}; "
                  f"brute-force check on {ev['check_queries']} queries: max diff {ev['check_max_abs_diff']:.1e}")
    table.add_row(f"exact top-{args.k} ({tk['queries']} queries)", f"{tk['seconds']:.1f}", f"{tk['peak_mb']:.0f}", "")
    if ann is not None:
        table.add_row(f"faiss IVF{args.nlist} nprobe {args.nprobe} (build / search)",
                      f"{ann['build_s']:.1f} / {ann['search_s']:.2f}", f"{ann['peak_mb']:.0f}",
                      f"recall@{args.k} vs exact {ann['recall_at_k']:.4f}")
    else:
        table.add_row("faiss", "-", "-", "skipped (faiss not installed or --no-ann)")
    Console().print(table)


if __name__ == "__main__":
    main()
