"""How much the fused training stem saves on a CPU, against BatchNorm -> ReLU -> max pool as three modules, in one run.

A ResNet stem ends in BatchNorm, ReLU and a 3x3 stride-2 max pool on the network's largest map. In training the
three and their backward passes are memory-bound passes over that map; ``bn_relu_maxpool``
(``opreid_bench/modeling/layers/stem_pool.py``) computes the same function with the affine map and the ReLU on the 4x
smaller pooled map (``tests/test_model_layers.py`` checks values, gradients and running statistics against the plain
composition, and runs ``gradcheck``). Both ``resnet_mini`` (the demo) and ``resnet50`` use it in training.

Measured here, both forms interleaved in one process (repeats alternate, the median counts), one thread:

- ``stem``: BN + ReLU + max pool forward and backward alone, at the demo's stem map (an ``ours`` batch of
  2 x 16 x 4 crops at 128 x 64: 128 x 16 x 64 x 32, NHWC) and at ResNet-50's (64 x 64 x 128 x 64, 256 x 128 input);
- ``ours step`` / ``baseline step``: a whole training step of the demo's recipe at 128 x 64 and at the 64 x 32 of its
  first epochs (progressive resizing), the stem form the only difference.

The headline is ``speedup`` = plain seconds / fused seconds. Run on an otherwise idle machine.

Usage:
  python benchmarks/bench_stem.py            # table
  python benchmarks/bench_stem.py --json     # one JSON object on stdout
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_gem import training_step_run  # noqa: E402

from opreid_bench.modeling.layers import stem_pool  # noqa: E402

FUSED = stem_pool.bn_relu_maxpool


def plain(x: torch.Tensor, bn: torch.nn.BatchNorm2d, pool: torch.nn.MaxPool2d) -> torch.Tensor:
    """The stem as three modules (what the backbones ran before the fused form)."""
    return pool(torch.relu(bn(x)))


def interleaved(run: Callable[[], None], repeats: int) -> dict[str, float]:
    """Median seconds of ``run`` with each stem form, the forms alternating repeat by repeat."""
    import time

    from opreid_bench.modeling.backbones import compact, resnet

    times: dict[str, list[float]] = {"plain": [], "fused": []}
    try:
        for _ in range(repeats):
            for name, form in (("plain", plain), ("fused", FUSED)):
                compact.bn_relu_maxpool = resnet.bn_relu_maxpool = form  # type: ignore[assignment]
                stem_pool.bn_relu_maxpool = form  # type: ignore[assignment]
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    finally:
        compact.bn_relu_maxpool = resnet.bn_relu_maxpool = stem_pool.bn_relu_maxpool = FUSED  # type: ignore[assignment]
    return {name: statistics.median(v) for name, v in times.items()}


def stem_alone(shape: tuple[int, int, int, int], repeats: int) -> dict[str, float]:
    """BN + ReLU + max pool forward and backward on an NHWC map of ``shape``."""
    torch.manual_seed(0)
    bn, pool = torch.nn.BatchNorm2d(shape[1]).train(), torch.nn.MaxPool2d(3, stride=2, padding=1)
    x = torch.randn(*shape).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2).contiguous(memory_format=torch.channels_last)

    def run() -> None:
        x.grad = None
        stem_pool.bn_relu_maxpool(x, bn, pool).backward(grad)

    run()
    return interleaved(run, repeats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9, help="alternating repeats per case (median counts)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cases: dict[str, dict[str, float]] = {
        "stem 128x16x64x32 (demo)": stem_alone((128, 16, 64, 32), args.repeats),
        "stem 64x64x128x64 (ResNet-50)": stem_alone((64, 64, 128, 64), args.repeats),
        "ours step, 128x64": interleaved(training_step_run("ours"), args.repeats),
        "ours step, 64x32": interleaved(training_step_run("ours", (64, 32)), args.repeats),
        "baseline step, 128x64": interleaved(training_step_run("baseline"), args.repeats),
        "baseline step, 64x32": interleaved(training_step_run("baseline", (64, 32)), args.repeats),
    }
    result: dict[str, Any] = {name: {"plain_ms": round(1e3 * t["plain"], 2), "fused_ms": round(1e3 * t["fused"], 2),
                                     "speedup": round(t["plain"] / t["fused"], 2)} for name, t in cases.items()}
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table(title="Training stem: BN, ReLU, max pool as modules vs the fused form (1 thread, medians)")
    for col in ("case", "plain ms", "fused ms", "speedup"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, r in result.items():
        table.add_row(name, f"{r['plain_ms']:.1f}", f"{r['fused_ms']:.1f}", f"{r['speedup']:.2f}x")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
