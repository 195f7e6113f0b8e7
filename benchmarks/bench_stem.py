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

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from ab_timing import interleaved, parse_args, report, training_step_run  # noqa: E402

from opreid_bench.modeling.backbones import compact, resnet  # noqa: E402
from opreid_bench.modeling.layers import stem_pool  # noqa: E402

FUSED = stem_pool.bn_relu_maxpool


def plain(x: torch.Tensor, bn: torch.nn.BatchNorm2d, pool: torch.nn.MaxPool2d) -> torch.Tensor:
    """The stem as three modules (what the backbones ran before the fused form)."""
    return pool(torch.relu(bn(x)))


def _install(form: object) -> None:
    compact.bn_relu_maxpool = resnet.bn_relu_maxpool = stem_pool.bn_relu_maxpool = form  # type: ignore[assignment]


FORMS = {"plain": lambda: _install(plain), "fused": lambda: _install(FUSED)}


def both_forms(run: object, repeats: int) -> dict[str, float]:
    """Median seconds of ``run`` with each stem form, the forms alternating repeat by repeat."""
    return interleaved(run, FORMS, repeats, restore=FORMS["fused"])  # type: ignore[arg-type]


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
    return both_forms(run, repeats)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, 9, argv)
    cases: dict[str, dict[str, float]] = {
        "stem 128x16x64x32 (demo)": stem_alone((128, 16, 64, 32), args.repeats),
        "stem 64x64x128x64 (ResNet-50)": stem_alone((64, 64, 128, 64), args.repeats),
    }
    for method in ("ours", "baseline"):
        for size in ((128, 64), (64, 32)):
            cases[f"{method} step, {size[0]}x{size[1]}"] = both_forms(training_step_run(method, size), args.repeats)
    report(cases, "plain", "fused", "Training stem: BN, ReLU, max pool as modules vs the fused form (1 thread, medians)",
           args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
