"""How fast the demo's training runs on this CPU: one process against data-parallel processes, measured in one run.

The demo (``opreid-bench demo``) trains each method on ``--ranks`` processes at once (DDP over gloo, one thread each
on 2 cores). This benchmark times the same training three ways on a small SynthOcc training set, with the demo's own
recipe for ``resnet_mini`` (``opreid_bench.demo._method_config``) and its own launchers:

- ``1 process x 1 thread`` and ``1 process x N threads``: ``train`` in this process (``torch.set_num_threads``);
- ``N processes x 1 thread``: the demo's data-parallel launcher (``_train_data_parallel``), spawn and join included.

Each mode reports the wall time of the whole call (what a user waits for: process start-up included, about 10 s for
DDP) and training images per second, over the wall time and over the training loop alone (the epochs' own seconds in
``metrics.jsonl``; CBE's extra copies not counted). Start-up weighs less in the demo's minutes-long runs than here.
The headline is ``speedup``: data-parallel images/s over the same core count used as threads by one process. On 2
cores a second thread already gives about 1.8x, so two processes gain little in the training loop (about
1.06x) and lose DDP's start-up in wall time at this size. Run on an otherwise idle machine: another job on the cores
slows the modes unequally.

Usage:
  python benchmarks/bench_demo_training.py                # ours, 80 identities, 3 epochs, 2 cores
  python benchmarks/bench_demo_training.py --json         # one JSON object on stdout
  python benchmarks/bench_demo_training.py --method baseline --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def training_set(root: Path, ids: int, seed: int) -> Any:
    """A SynthOcc pool of ``ids`` identities at the demo's 128x64, as a training split (pids relabelled)."""
    from opreid_bench.data.datasets import load_pool
    from opreid_bench.data.records import DatasetSplits, relabel_pids
    from opreid_bench.synth.generator import SynthConfig, generate_pool

    manifest = generate_pool(root / "pool", SynthConfig(num_ids=ids, min_images=12, max_images=20, width=64,
                                                        height=128, seed=seed), workers=2)
    return DatasetSplits(name="synthocc-bench", train=relabel_pids(list(load_pool(manifest))))


def time_mode(label: str, job: Any, splits: Any, *, ranks: int, threads: int) -> dict[str, Any]:
    """Train ``job`` once in one mode; wall seconds of the whole call and sampled images per second."""
    from opreid_bench import demo

    if job.run_dir.exists():
        import shutil

        shutil.rmtree(job.run_dir)  # the benchmark's own temporary run from the previous mode
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        if ranks > 1:
            demo._train_data_parallel(job, splits, ranks)
        else:
            demo._train_job(job, splits, progress=False)
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - start
    lines = [json.loads(x) for x in (job.run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    images = sum(int(x["images"]) // (2 if job.config.data.cbe else 1) for x in lines)
    loop_seconds = sum(float(x["seconds"]) for x in lines)
    return {"mode": label, "ranks": ranks, "threads": threads, "seconds": round(seconds, 2),
            "img_per_s": round(images / seconds, 1), "loop_img_per_s": round(images / loop_seconds, 1),
            "final_loss": round(float(lines[-1]["loss"]), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="ours")
    parser.add_argument("--ids", type=int, default=80, help="SynthOcc identities of the training set")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2, help="threads of the one-process mode, processes of DDP")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from opreid_bench import demo

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="bench-demo-training-") as tmp:
        root = Path(tmp)
        splits = training_set(root, args.ids, args.seed)
        cfg = demo.resolve_config(demo.DemoConfig(out=root, seed=args.seed, epochs=args.epochs))
        job = demo._TrainJob(args.method, demo._method_config(args.method, cfg), root / "run", "bench")
        modes = [("1 process x 1 thread", 1, 1), (f"1 process x {args.cores} threads", 1, args.cores),
                 (f"{args.cores} processes x 1 thread (DDP)", args.cores, 1)]
        rows = []
        for label, ranks, threads in modes:
            console.print(f"timing {label} ...")
            rows.append(time_mode(label, replace(job), splits, ranks=ranks, threads=threads))
    speedup = rows[2]["img_per_s"] / rows[1]["img_per_s"]
    loop_speedup = rows[2]["loop_img_per_s"] / rows[1]["loop_img_per_s"]
    result = {"method": args.method, "images": len(splits.train), "epochs": args.epochs, "cpus": os.cpu_count(),
              "load_avg_1min": round(os.getloadavg()[0], 2), "modes": rows,
              "speedup": round(speedup, 2), "loop_speedup": round(loop_speedup, 2),
              "speedup_over_one_thread": round(rows[2]["img_per_s"] / rows[0]["img_per_s"], 2)}
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table(title=f"demo training of {args.method} (resnet_mini 128x64, {len(splits.train)} crops, "
                        f"{args.epochs} epochs)")
    for col in ("mode", "wall seconds", "img/s (wall)", "img/s (training loop)", "final loss"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["mode"], f"{r['seconds']:.1f}", f"{r['img_per_s']:.1f}", f"{r['loop_img_per_s']:.1f}",
                      f"{r['final_loss']:.3f}")
    Console().print(table)
    print(f"speedup: {args.cores} DDP processes / 1 process with {args.cores} threads = {speedup:.2f}x wall, "
          f"{loop_speedup:.2f}x in the training loop ({result['speedup_over_one_thread']:.2f}x wall over one thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
