"""Reconstructive pooling (RP), the paper's Eq. (2): a training-only attention pooling of the last feature map.

f_r = (Wv F) softmax(Wm F)^T, F in R^{C x hw}: Wm (1 x C) scores every position, the softmax over positions turns the
scores into a mask, and the mask pools the reconstructed map Wv F (C x C) into one C-dim vector. It feeds its own BNNeck
and classifier (``RPBranch``) and the BED loss (Eq. 5); inference never runs it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from opreid_bench.modeling.layers.bnneck import BNNeck
from opreid_bench.modeling.layers.positions import as_positions


class ReconstructivePooling(nn.Module):
    """(B, C, h, w) -> (B, C): f_r = (Wv F) softmax(Wm F)^T, Eq. (2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.value = nn.Conv2d(channels, channels, 1, bias=False)  # W^v, C x C
        self.mask = nn.Conv2d(channels, 1, 1, bias=False)  # W^m, 1 x C (a bias would cancel in the softmax)
        # Wv = identity and a near-uniform mask: RP starts as average pooling, on the global feature's scale.
        with torch.no_grad():
            self.value.weight.copy_(torch.eye(channels).reshape(channels, channels, 1, 1))
        nn.init.normal_(self.mask.weight, std=0.01)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        weights = self.mask(fmap).flatten(2).softmax(dim=2)  # (B, 1, N): softmax over positions of Wm F
        pooled = torch.bmm(weights, as_positions(fmap)).squeeze(1)  # (B, C): F softmax(Wm F)^T
        # Reconstructive pooling, Eq. (2): f_r = (Wv F) softmax(Wm F)^T = Wv (F softmax(Wm F)^T); Wv is linear, so
        # it is applied once to the pooled vector instead of at all N positions (N times cheaper, the same f_r)
        return F.linear(pooled, self.value.weight.flatten(1))


class RPBranch(nn.Module):
    """RP + its own BNNeck + its own classifier (training only); ``classifier`` may be None (no identity head)."""

    def __init__(self, channels: int, classifier: nn.Module | None) -> None:
        super().__init__()
        self.pool = ReconstructivePooling(channels)
        self.bnneck = BNNeck(channels)
        self.classifier = classifier

    def forward(self, fmap: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.pool(fmap)
        bn = self.bnneck(feat)
        out = {"rp_feat": feat, "rp_bn": bn}
        if self.classifier is not None:
            out["rp_logits"] = self.classifier(bn)
        return out
