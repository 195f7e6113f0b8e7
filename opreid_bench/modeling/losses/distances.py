"""Pairwise distances and masks shared by the metric losses."""

from __future__ import annotations

import torch


def euclidean_dist(x: torch.Tensor) -> torch.Tensor:
    """(B, C) -> (B, B) Euclidean distances, sqrt clamped at 1e-12 as in BoT (finite gradient at d = 0)."""
    sq = x.pow(2).sum(dim=1, keepdim=True)
    d2 = sq + sq.t() - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()


def pair_masks(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) boolean (B, B) masks; positives exclude the diagonal (i != j)."""
    same = targets.unsqueeze(0) == targets.unsqueeze(1)
    eye = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    return same & ~eye, ~same
