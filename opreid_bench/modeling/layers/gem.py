"""Pooling of the last feature map: GeM (Radenovic et al. 2018) with a learnable exponent, or plain average."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _GeMPooling(torch.autograd.Function):
    """GeM pooling with a hand-written backward: the values and gradients of autograd through the formula at a
    fraction of its CPU time. Autograd's tensor-exponent ``pow`` and its backward take scalar code paths and allocate
    several map-sized temporaries (each a round of page faults); here the forward allocates two maps and keeps one,
    the backward one. ``benchmarks/bench_gem.py`` measures it."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        log_x = x.clamp(min=eps).log_()
        y = (log_x * p).exp_()  # clamp(x)^p
        m = y.mean(dim=(2, 3))
        out = m.pow(1.0 / p)
        y_log_x = log_x.mul_(y).sum(dim=(2, 3))  # sum_hw x^p log x, all that dp needs of the map
        ctx.eps = eps
        ctx.save_for_backward(x, y, m, out, p, y_log_x)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        x, y, m, out, p, y_log_x = ctx.saved_tensors
        hw = x.shape[2] * x.shape[3]
        g_m = grad * out / (p * m)  # d m^(1/p) / dm = m^(1/p) / (p m)
        grad_x = grad_p = None
        if ctx.needs_input_grad[0]:
            # dm/dx = p x^(p-1) / hw = p y / (x hw) above eps, 0 below (the clamp): 1/x is taken of x with every
            # entry <= eps set to inf, which gives the 0 without a mask (masked_fill is a scalar loop on a CPU);
            # only an entry exactly at eps differs from clamp's autograd, which passes its gradient
            inv_x = F.threshold(x, ctx.eps, float("inf")).reciprocal_()
            grad_x = inv_x.mul_(y).mul_((g_m * (p / hw))[:, :, None, None])
        if ctx.needs_input_grad[1]:
            # d m^(1/p) / dp = -m^(1/p) log(m) / p^2 + g_m-weighted dm/dp, with dm/dp = mean_hw(x^p log x)
            outer = (grad * out * m.log()).sum() * (-1.0 / (p * p))
            inner = (g_m * y_log_x).sum() / hw
            grad_p = (outer + inner).reshape(p.shape)
        return grad_x, grad_p, None


def gem_formula(x: torch.Tensor, p: torch.Tensor, eps: float) -> torch.Tensor:
    """GeM as its formula, (B, C, h, w) -> (B, C): what inference and ONNX export run, and the reference that
    :class:`_GeMPooling`'s hand-written backward reproduces."""
    # GeM: f_c = (1/|X_c| sum_{x in X_c} x^p)^{1/p}
    return F.adaptive_avg_pool2d(x.clamp(min=eps).pow(p), 1).pow(1.0 / p).flatten(1)


class GeM(nn.Module):
    """Generalized-mean pooling, learnable p (init 3) as in fast-reid: (mean_{hw} clamp(x, eps)^p)^{1/p}."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C)."""
        if torch.is_grad_enabled() and not torch.jit.is_tracing() and (x.requires_grad or self.p.requires_grad):
            return _GeMPooling.apply(x, self.p, self.eps)  # training: the fast backward
        return gem_formula(x, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4f}, eps={self.eps}"


class AvgPool(nn.Module):
    """Global average pooling, (B, C, h, w) -> (B, C) (BoT)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def build_pooling(name: str) -> nn.Module:
    """Pooling by name: ``gem`` -> GeM(p=3), ``avg`` -> AvgPool."""
    return GeM() if name.lower() == "gem" else AvgPool()
