"""BoT's identity classifier: a bias-free linear layer on the BNNeck feature, weights N(0, 0.001)."""

from __future__ import annotations

import torch
from torch import nn


class LinearClassifier(nn.Module):
    """(B, C) -> (B, num_classes) logits, no bias (BoT)."""

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        nn.init.normal_(self.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t()

    def extra_repr(self) -> str:
        return f"in_dim={self.weight.shape[1]}, num_classes={self.weight.shape[0]}"
