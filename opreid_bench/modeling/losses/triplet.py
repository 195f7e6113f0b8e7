"""Batch-hard triplet loss (Hermans et al. 2017) as in BoT: Euclidean distance on the un-normalised pooled feature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from opreid_bench.modeling.losses.distances import euclidean_dist


class TripletLoss(nn.Module):
    """mean_i max(0, max_{p} d(i, p) - min_{n} d(i, n) + margin); anchors without a negative are skipped."""

    def __init__(self, margin: float = 0.3) -> None:
        super().__init__()
        self.margin = float(margin)

    def forward(self, feats: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        dist = euclidean_dist(feats.float())
        same = targets.unsqueeze(0) == targets.unsqueeze(1)
        has_neg = (~same).any(dim=1)
        if not bool(has_neg.any()):
            return feats.sum() * 0.0  # one identity in the batch: no triplet, keep the graph
        # the anchor itself (d = 0) counts as a positive, as in BoT, so an anchor without positives still works
        d_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values
        d_an = dist.masked_fill(same, float("inf")).min(dim=1).values
        # Triplet, batch-hard: [d(a, p_hard) - d(a, n_hard) + m]_+
        return F.relu(d_ap - d_an + self.margin)[has_neg].mean()
