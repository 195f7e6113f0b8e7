"""Pooling of the last feature map: GeM (Radenovic et al. 2018) with a learnable exponent, or plain average."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GeM(nn.Module):
    """Generalized-mean pooling, learnable p (init 3) as in fast-reid: (mean_{hw} clamp(x, eps)^p)^{1/p}."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C)."""
        # GeM: f_c = (1/|X_c| sum_{x in X_c} x^p)^{1/p}
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), 1).pow(1.0 / self.p).flatten(1)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4f}, eps={self.eps}"


class AvgPool(nn.Module):
    """Global average pooling, (B, C, h, w) -> (B, C) (BoT)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def build_pooling(name: str) -> nn.Module:
    """Pooling by name: ``gem`` -> GeM(p=3), ``avg`` -> AvgPool."""
    return GeM() if name.lower() == "gem" else AvgPool()
