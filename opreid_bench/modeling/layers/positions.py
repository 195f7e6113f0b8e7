"""A feature map as a list of positions, without changing its memory layout.

The attention layers (non-local, DNL Eq. 1, RP Eq. 2) treat a (B, C, h, w) map as N = h*w position vectors. Reading
it as (B, N, C) is a free view of an NHWC (channels-last) map, the layout the CPU recipes train in; ``flatten(2)``
would copy it into (B, C, N), and that copy's gradient comes back in NCHW, which then runs every later elementwise
backward (ReLU, BN, the gradient sums) on mixed layouts, about twice as slowly on a CPU. An NCHW map (ONNX
export, GPUs) is copied into (B, N, C) once.
"""

from __future__ import annotations

import torch


def as_positions(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, N, C) with N = h*w in row-major order (a view when ``x`` is channels-last)."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


def from_positions(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, N, C) -> (B, C, h, w), the inverse of :func:`as_positions` (a channels-last view of a contiguous ``t``)."""
    b, _, c = t.shape
    return t.reshape(b, h, w, c).permute(0, 3, 1, 2)
