"""Disentangled non-local (DNL) block (Yin et al. ECCV 2020), the paper's Eq. (1).

w(f_i, f_j) = softmax_j( (Wq f_i - mu_q)^T (Wk f_j - mu_k) / (sqrt(C') * T) ) + softmax_j( Wm f_j )
out_i = sum_j w(f_i, f_j) Wv f_j ;  z = x + BN(Conv(out))   (Conv + BN zero-initialised, so z = x at start)

mu_q / mu_k are the means of the queries / keys over all positions of the image (the "whitening"), C' = C/2 the
inter channels, T = 0.05 the DNL paper's temperature. The first (whitened pairwise) term learns within-region
relations, the second (unary) term a per-image saliency map shared by every position i.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from opreid_bench.modeling.layers.positions import as_positions, from_positions


class DNLBlock(nn.Module):
    """DNL block with inter channels ``in_channels // reduc_ratio`` and temperature ``temperature``."""

    def __init__(self, in_channels: int, reduc_ratio: int = 2, temperature: float = 0.05) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.inter_channels = max(1, in_channels // reduc_ratio)
        self.temperature = float(temperature)
        c, ci = in_channels, self.inter_channels
        self.query = nn.Conv2d(c, ci, 1)  # W^q
        self.key = nn.Conv2d(c, ci, 1)  # W^k
        self.value = nn.Conv2d(c, ci, 1, bias=False)  # W^v
        self.mask = nn.Conv2d(c, 1, 1, bias=False)  # W^m (a bias would cancel in the softmax)
        self.out = nn.Sequential(nn.Conv2d(ci, c, 1, bias=False), nn.BatchNorm2d(c))
        # DNL / mmcv NonLocal2d init: N(0, 0.01) for the embeddings keeps the tempered softmax soft at the start.
        for conv in (self.query, self.key, self.value, self.mask):
            nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(self.query.bias)
        nn.init.zeros_(self.key.bias)
        nn.init.kaiming_normal_(self.out[0].weight, mode="fan_in")
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two terms of Eq. (1): pairwise (B, N, N) and unary (B, 1, N) weights, each a softmax over j."""
        q = as_positions(self.query(x))  # (B, N, C')
        k = as_positions(self.key(x))
        q = q - q.mean(dim=1, keepdim=True)  # whitening: subtract mu_q (mean over positions)
        k = k - k.mean(dim=1, keepdim=True)  # subtract mu_k
        # DNL pairwise term, Eq. (1): softmax_j((Wq f_i - mu_q)^T (Wk f_j - mu_k) / (sqrt(C') T))
        logits = torch.bmm(q, k.transpose(1, 2)) / (math.sqrt(self.inter_channels) * self.temperature)
        pairwise = logits.softmax(dim=2)
        # DNL unary term, Eq. (1): softmax_j(Wm f_j)
        unary = self.mask(x).flatten(2).softmax(dim=2)
        return pairwise, unary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        pairwise, unary = self.attention(x)
        v = as_positions(self.value(x))  # (B, N, C'): Wv f_j
        # out_i = sum_j [pairwise_ij + unary_j] Wv f_j, Eq. (1)
        out = torch.bmm(pairwise, v) + torch.bmm(unary, v)  # (B, N, C') + (B, 1, C')
        return x + self.out(from_positions(out, h, w))
