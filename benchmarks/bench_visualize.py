"""Benchmark `opreid-bench visualize` at Market scale: 3,368 queries x 15,913 gallery, a page of 100 queries.

Random features, Market-like labels (751 identities, 6 cameras) and tiny generated crops (a few files shared by all
paths: only the shown crops are read). Prints the time of the whole visualize job (rank lists of every query, page,
PNG grids) and the process's peak RSS, with the plain evaluator (`evaluate_features`) on the same features timed in
the same run as the reference.

    python benchmarks/bench_visualize.py --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=3368)
    ap.add_argument("--gallery", type=int, default=15913)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    from PIL import Image

    from opreid_bench.engine.visualize import VisualizeJob, run_visualize
    from opreid_bench.evaluation import FeatureSet, evaluate_features, write_feature_file

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        crops = []
        for i in range(32):
            p = tmp_path / f"crop{i}.jpg"
            Image.new("RGB", (64, 128), (i * 8, 100, 200 - i * 6)).save(p)
            crops.append(str(p))

        def side(n: int) -> FeatureSet:
            pids = rng.integers(0, 751, n)
            return FeatureSet(rng.standard_normal((n, args.dim), dtype=np.float32), pids, rng.integers(0, 6, n),
                              [crops[i % len(crops)] for i in range(n)], rng.random(n) < 0.5)

        query, gallery = side(args.queries), side(args.gallery)
        h5 = tmp_path / "feats.h5"
        write_feature_file(h5, query, gallery, {"junk": "market"})
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        t0 = time.perf_counter()
        summary = run_visualize(VisualizeJob(out=tmp_path / "vis", features=h5, limit=args.limit, topk=10))
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        t0 = time.perf_counter()
        evaluate_features(query, gallery, junk="market", device="cpu")
        ref = time.perf_counter() - t0

    out = {"seconds": round(seconds, 2), "peak_mb": round(peak_mb, 1),
           "rss_before_mb": round(base_rss, 1), "evaluate_seconds": round(ref, 2),
           "ratio_vs_evaluate": round(seconds / ref, 2), "queries_shown": summary["queries_shown"],
           "num_query": args.queries, "num_gallery": args.gallery, "dim": args.dim}
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>20}: {v}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
