"""Multi-head cosine classifier, the paper's L_c (Eq. 5), after Tang et al. NeurIPS 2020 ("causal norm" classifier).

The C channels are split into H groups (heads). Per head h: the feature is L2-normalised, x_h / ||x_h||, and the
class weights are normalised as w_h / (||w_h|| + gamma) (gamma = 1/32 keeps small-norm weights from being blown up);
the logit is (tau / H) <x_h/||x_h||, w_h/(||w_h|| + gamma)>, and logits are summed over heads. Tang et al.:
H = 2, tau = 16, gamma = 1/32.

One cross-entropy is taken of the summed logits (Tang et al.'s form); Eq. (5) written literally, sum_i E(Y_i, Y), would
take one per head and add them, which gives another loss (``baselines/README.md`` says why this one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadCosineClassifier(nn.Module):
    """(B, C) -> (B, num_classes); ``in_dim`` must be divisible by ``num_heads``."""

    def __init__(
        self, in_dim: int, num_classes: int, num_heads: int = 2, tau: float = 16.0, gamma: float = 1.0 / 32
    ) -> None:
        super().__init__()
        if in_dim % num_heads:
            raise ValueError(f"feature dim {in_dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.tau = float(tau)
        self.gamma = float(gamma)
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        bound = 1.0 / math.sqrt(in_dim)  # Tang et al.: uniform(-1/sqrt(C), 1/sqrt(C))
        nn.init.uniform_(self.weight, -bound, bound)

    def normalized_weight(self) -> torch.Tensor:
        """Per-head causal norm of the class weights: w_h / (||w_h|| + gamma), concatenated over heads."""
        heads = self.weight.chunk(self.num_heads, dim=1)
        return torch.cat([w / (w.norm(dim=1, keepdim=True) + self.gamma) for w in heads], dim=1)

    def normalized_input(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head L2 normalisation of the features, concatenated over heads."""
        return torch.cat([F.normalize(h, dim=1) for h in x.chunk(self.num_heads, dim=1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Multi-head cosine classifier (L_c, Eq. 5): sum_h (tau/H) <x_h/||x_h||, w_h/(||w_h|| + gamma)>
        return (self.tau / self.num_heads) * self.normalized_input(x) @ self.normalized_weight().t()

    def extra_repr(self) -> str:
        return (f"in_dim={self.weight.shape[1]}, num_classes={self.weight.shape[0]}, heads={self.num_heads}, "
                f"tau={self.tau}, gamma={self.gamma}")
