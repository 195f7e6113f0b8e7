"""BNNeck (Luo et al. 2019, BoT): BatchNorm1d between the pooled feature (metric losses) and the classifier."""

from __future__ import annotations

import torch
from torch import nn


class BNNeck(nn.Module):
    """BatchNorm1d with a frozen zero bias (BoT: ``bias.requires_grad_(False)``), weight 1 (kaiming-init for BN).

    The bias is frozen so the normalised feature stays centred, which the cosine-like classifier space prefers.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.bn.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) -> (B, C)."""
        return self.bn(x)
