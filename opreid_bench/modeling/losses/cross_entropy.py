"""Cross-entropy with label smoothing (Szegedy et al.; BoT eps = 0.1)."""

from __future__ import annotations

import torch
from torch import nn


class CrossEntropyLabelSmooth(nn.Module):
    """CE against q = (1 - eps) y + eps / K, K = number of classes (taken from the logits)."""

    def __init__(self, eps: float = 0.1) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = logits.float().log_softmax(dim=1)
        k = logits.shape[1]
        smooth = torch.full_like(log_probs, self.eps / k)
        smooth.scatter_(1, targets.long().unsqueeze(1), 1.0 - self.eps + self.eps / k)
        # Label-smoothed CE: -sum_k q_k log p_k, q = (1 - eps) y + eps / K
        return -(smooth * log_probs).sum(dim=1).mean()
