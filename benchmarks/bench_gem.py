"""How much the hand-written GeM backward saves on a CPU, against autograd through the GeM formula, in one run.

GeM pooling (``opreid_bench.modeling.layers.gem``) raises every activation of the last feature map to a learnable
power. Autograd through ``clamp(x).pow(p)`` with a tensor exponent, and through its ``pow`` backward, takes scalar
code paths on a CPU; ``baseline`` and ``ours`` use GeM, so on the demo's ``resnet_mini`` it was about a sixth of an
``ours`` training step. Training now uses ``_GeMPooling`` (same values and gradients; ``tests/test_model_layers.py``
checks both against the formula's autograd and with ``gradcheck``); inference and ONNX export keep the formula.

Measured here, both forms interleaved in one process (repeats alternate, the median counts), one thread:

- ``gem``: GeM forward + backward alone, at the demo's last map (128 crops x 512 x 8 x 4, NHWC: an ``ours`` batch
  of 2 x 16 x 4 with CBE) and at ResNet-50's (64 x 2048 x 16 x 8, 256 x 128 input, last stride 1);
- ``ours step``: a whole training step of ``ours`` with the demo's ``resnet_mini`` recipe on random 128 x 64 crops
  (forward, the full loss, backward, Adam), the only difference being the GeM form.

The headline is ``speedup`` = formula seconds / fast seconds. Run on an otherwise idle machine.

Usage:
  python benchmarks/bench_gem.py            # table
  python benchmarks/bench_gem.py --json     # one JSON object on stdout
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opreid_bench.modeling.layers import gem as gem_module  # noqa: E402

FAST_FORWARD = gem_module.GeM.forward


def formula_forward(self: gem_module.GeM, x: torch.Tensor) -> torch.Tensor:
    """GeM as autograd sees the formula (the training path before the hand-written backward)."""
    return gem_module.gem_formula(x, self.p, self.eps)


def interleaved(run: Callable[[], None], repeats: int) -> dict[str, float]:
    """Median seconds of ``run`` with each GeM form, the forms alternating repeat by repeat."""
    times: dict[str, list[float]] = {"formula": [], "fast": []}
    try:
        for _ in range(repeats):
            for name, forward in (("formula", formula_forward), ("fast", FAST_FORWARD)):
                gem_module.GeM.forward = forward  # type: ignore[method-assign]
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    finally:
        gem_module.GeM.forward = FAST_FORWARD  # type: ignore[method-assign]
    return {name: statistics.median(v) for name, v in times.items()}


def gem_alone(shape: tuple[int, int, int, int], repeats: int) -> dict[str, float]:
    """GeM forward + backward on a ReLU-like NHWC map of ``shape``."""
    torch.manual_seed(0)
    pool = gem_module.GeM()
    x = torch.randn(*shape).relu_().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    weights = torch.randn(shape[0], shape[1])

    def run() -> None:
        x.grad, pool.p.grad = None, None
        (pool(x) * weights).sum().backward()

    run()
    return interleaved(run, repeats)


def training_step_run(method: str = "ours", size: tuple[int, int] | None = None) -> Callable[[], None]:
    """One training step of ``method`` with the demo's ``resnet_mini`` recipe (random NHWC crops, 200 identities;
    ``ours`` gets the 2 x 16 x 4 images CBE makes of a batch), as a function to time; ``size`` (height, width)
    replaces the recipe's 128 x 64 (64 x 32: the first, half-size epochs)."""
    from opreid_bench.demo import DemoConfig, _method_config, resolve_config
    from opreid_bench.engine.criterion import ReIDCriterion
    from opreid_bench.engine.optim import build_optimizer
    from opreid_bench.modeling import build_model

    cfg = _method_config(method, resolve_config(DemoConfig(out=Path("unused"), seed=0)))
    torch.manual_seed(0)
    model = build_model(cfg.model, 200).to(memory_format=torch.channels_last).train()
    criterion = ReIDCriterion(cfg.loss)
    optimizer = build_optimizer(model, cfg.optim)
    copies = 2 if cfg.data.cbe else 1
    height, width = size or (cfg.data.height, cfg.data.width)
    images = torch.randn(copies * cfg.data.batch_p * cfg.data.batch_k, 3, height, width)
    images = images.contiguous(memory_format=torch.channels_last)
    pids = torch.arange(cfg.data.batch_p).repeat_interleave(cfg.data.batch_k).repeat(copies)

    def run() -> None:
        outputs = model(images)
        loss, _ = criterion({k: v.float() for k, v in outputs.items()}, pids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    run()
    return run


def ours_step(repeats: int) -> dict[str, float]:
    """One ``ours`` training step with the demo's ``resnet_mini`` recipe, each GeM form."""
    return interleaved(training_step_run("ours"), repeats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="alternating repeats per case (median counts)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cases: dict[str, dict[str, float]] = {
        "gem 128x512x8x4 (demo)": gem_alone((128, 512, 8, 4), args.repeats),
        "gem 64x2048x16x8 (ResNet-50)": gem_alone((64, 2048, 16, 8), args.repeats),
        "ours step (demo resnet_mini, 128 crops)": ours_step(args.repeats),
    }
    result: dict[str, Any] = {name: {"formula_ms": round(1e3 * t["formula"], 2), "fast_ms": round(1e3 * t["fast"], 2),
                                     "speedup": round(t["formula"] / t["fast"], 2)} for name, t in cases.items()}
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table(title="GeM: autograd through the formula vs the hand-written backward (1 thread, medians)")
    for col in ("case", "formula ms", "fast ms", "speedup"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, r in result.items():
        table.add_row(name, f"{r['formula_ms']:.1f}", f"{r['fast_ms']:.1f}", f"{r['speedup']:.2f}x")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
