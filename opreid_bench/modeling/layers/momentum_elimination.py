"""Momentum-effect elimination (ME), the paper's Eq. (6), after Tang et al. (NeurIPS 2020).

Training: mu_t = beta mu_{t-1} + (1 - beta) mean_{z in batch} z / ||z||  (no gradient; a buffer, saved in checkpoints).
Inference: z -> normalise(z / ||z|| - mu)  ("subtract", the paper), or the TDE projection of Tang et al.
z -> normalise(z_hat - alpha cos(z, mu) mu_hat)  ("tde"), which removes only the component along the head-class
direction mu_hat.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MomentumElimination(nn.Module):
    """Keeps the moving mean feature direction ``mu`` and removes it from retrieval features."""

    mu: torch.Tensor
    num_updates: torch.Tensor

    def __init__(self, dim: int, beta: float = 0.9, mode: str = "subtract", alpha: float = 1.0) -> None:
        super().__init__()
        if mode not in ("subtract", "tde"):
            raise ValueError(f"ME mode must be 'subtract' or 'tde', got {mode!r}")
        self.beta = float(beta)
        self.mode = mode
        self.alpha = float(alpha)
        self.register_buffer("mu", torch.zeros(dim))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, feats: torch.Tensor) -> None:
        """One Eq. (6) step from a batch of features (B, C); averaged over all processes under torch.distributed."""
        batch_mean = F.normalize(feats.detach().float(), dim=1).mean(dim=0)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(batch_mean)
            batch_mean /= torch.distributed.get_world_size()
        # ME, Eq. (6): mu_t = beta * mu_{t-1} + (1 - beta) * f~_g
        self.mu.mul_(self.beta).add_(batch_mean.to(self.mu.dtype), alpha=1.0 - self.beta)
        self.num_updates += 1

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Inference features (B, C) -> L2-normalised features with the momentum direction removed."""
        z = F.normalize(feats, dim=1)
        mu = self.mu.to(z.dtype)
        if self.mode == "subtract":
            z = z - mu  # paper: subtract the mean feature vector
        else:
            mu_hat = F.normalize(mu, dim=0)
            cos = z @ mu_hat  # (B,): cos(z, mu) since ||z|| = 1
            z = z - self.alpha * cos.unsqueeze(1) * mu_hat  # TDE: z - alpha cos(z, mu) mu_hat
        return F.normalize(z, dim=1)

    def extra_repr(self) -> str:
        return f"dim={self.mu.numel()}, beta={self.beta}, mode={self.mode}, alpha={self.alpha}"
