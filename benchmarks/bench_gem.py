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

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from ab_timing import interleaved, parse_args, report, training_step_run  # noqa: E402

from opreid_bench.modeling.layers import gem as gem_module  # noqa: E402

FAST_FORWARD = gem_module.GeM.forward


def formula_forward(self: gem_module.GeM, x: torch.Tensor) -> torch.Tensor:
    """GeM as autograd sees the formula (the training path before the hand-written backward)."""
    return gem_module.gem_formula(x, self.p, self.eps)


def _install(forward: object) -> None:
    gem_module.GeM.forward = forward  # type: ignore[method-assign, assignment]


FORMS = {"formula": lambda: _install(formula_forward), "fast": lambda: _install(FAST_FORWARD)}


def both_forms(run: object, repeats: int) -> dict[str, float]:
    """Median seconds of ``run`` with each GeM form, the forms alternating repeat by repeat."""
    return interleaved(run, FORMS, repeats, restore=FORMS["fast"])  # type: ignore[arg-type]


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
    return both_forms(run, repeats)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, 7, argv)
    cases: dict[str, dict[str, float]] = {
        "gem 128x512x8x4 (demo)": gem_alone((128, 512, 8, 4), args.repeats),
        "gem 64x2048x16x8 (ResNet-50)": gem_alone((64, 2048, 16, 8), args.repeats),
        "ours step (demo resnet_mini, 128 crops)": both_forms(training_step_run("ours"), args.repeats),
    }
    report(cases, "formula", "fast", "GeM: autograd through the formula vs the hand-written backward (1 thread, medians)",
           args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
