"""SynthOcc generation speed: crops per minute at 1 and 2 worker processes, seeded, same pool for every setting.

Two timings per worker count, both on the same planned pool (``SynthConfig(num_ids=--ids, seed=--seed)``, default
128x256 crops, 35 % occluded):

- ``render``: ``iter_rendered`` -- draw each crop and encode it as JPEG, nothing written (the generator itself);
- ``generate_pool``: what ``opreid-bench synth --workers N`` does -- the same plus writing the images, the manifest
  and the keypoint file into a fresh temporary folder.

``crops_per_cpu_minute`` divides by the CPU time the render used (this process and its workers), a figure that barely
moves with the machine's load, unlike the wall-clock ``crops_per_minute``. The ratio of 2 workers to 1 is measured in
the same run; the rendered bytes are compared across worker counts
(``identical_across_workers``: the output must not depend on ``workers``). Crops per minute depend on the machine and
on what else it runs: the printout says how many CPUs it saw and the load average at the start.

Usage:
  python benchmarks/bench_synth.py                 # 60 identities (~420 crops), workers 1 and 2
  python benchmarks/bench_synth.py --json          # one JSON object on stdout
  python benchmarks/bench_synth.py --ids 200 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opreid_bench.synth.generator import CropSpec, SynthConfig


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the worker pool)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def time_render(cfg: SynthConfig, specs: list[CropSpec], workers: int) -> tuple[float, float, str]:
    """Wall seconds and CPU seconds to render + JPEG-encode every spec with ``workers`` processes, and a hash of all
    bytes produced. CPU seconds barely depend on what else the machine runs; wall seconds do."""
    from opreid_bench.synth.generator import iter_rendered

    digest = hashlib.sha256()
    c0, t0 = _cpu_seconds(), time.perf_counter()
    for data, row in iter_rendered(specs, cfg, workers=workers):
        digest.update(data)
        digest.update(json.dumps(row, sort_keys=True).encode())
    return time.perf_counter() - t0, _cpu_seconds() - c0, digest.hexdigest()


def time_generate(cfg: SynthConfig, workers: int) -> float:
    """Seconds for ``generate_pool`` (render, encode, write images + manifest + keypoints) into a new folder."""
    from opreid_bench.synth.generator import generate_pool

    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        t0 = time.perf_counter()
        generate_pool(Path(tmp) / "pool", cfg, workers=workers)
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--ids", type=int, default=60, help="identities in the pool (4-10 crops each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    args = p.parse_args()

    from rich.console import Console
    from rich.table import Table

    from opreid_bench.synth.generator import SynthConfig, plan_pool

    counts = [int(w) for w in args.workers.split(",")]
    cfg = SynthConfig(num_ids=args.ids, seed=args.seed)
    specs = plan_pool(cfg)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    err = Console(stderr=True)
    render: dict[int, tuple[float, float, str]] = {}
    generate: dict[int, float] = {}
    for w in counts:
        with err.status(f"render {len(specs)} crops, {w} worker(s)"):
            render[w] = time_render(cfg, specs, w)
        with err.status(f"generate_pool {len(specs)} crops, {w} worker(s)"):
            generate[w] = time_generate(cfg, w)

    def per_minute(seconds: float) -> float:
        return round(len(specs) * 60.0 / seconds, 1)

    base = counts[0]
    result = {
        "crops": len(specs),
        "ids": args.ids,
        "seed": args.seed,
        "size": [cfg.width, cfg.height],
        "occlusion_rate": cfg.occlusion_rate,
        "render": {str(w): {"seconds": round(render[w][0], 3), "crops_per_minute": per_minute(render[w][0]),
                            "cpu_seconds": round(render[w][1], 3), "crops_per_cpu_minute": per_minute(render[w][1])}
                   for w in counts},
        "generate_pool": {str(w): {"seconds": round(generate[w], 3), "crops_per_minute": per_minute(generate[w])}
                          for w in counts},
        "render_speedup_vs_1_worker" if base == 1 else f"render_speedup_vs_{base}_workers": {
            str(w): round(render[base][0] / render[w][0], 2) for w in counts},
        "identical_across_workers": len({render[w][2] for w in counts}) == 1,
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_start": None if load is None else round(load, 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    table = Table(title=f"SynthOcc: {len(specs)} crops of {args.ids} identities, {cfg.width}x{cfg.height}, "
                        f"seed {args.seed} ({os.cpu_count()} CPUs, load {result['load_average_1min_at_start']})")
    for col in ("workers", "render s", "render crops/min", "render crops/CPU-min", "generate_pool s",
                "generate_pool crops/min", f"render speed-up vs {base}"):
        table.add_column(col, justify="right")
    for w in counts:
        table.add_row(str(w), f"{render[w][0]:.2f}", f"{per_minute(render[w][0]):,.0f}",
                      f"{per_minute(render[w][1]):,.0f}", f"{generate[w]:.2f}", f"{per_minute(generate[w]):,.0f}",
                      f"{render[base][0] / render[w][0]:.2f}")
    Console().print(table)
    Console().print(f"identical output across worker counts: {result['identical_across_workers']}")


if __name__ == "__main__":
    main()
