"""Non-local block (Wang et al. CVPR 2018), the dot-product form used by AGW (Ye et al.) and fast-reid.

Inter channels are ``in_channels // reduc_ratio`` (= in/2). The widely copied AGW/fast-reid code computes
``reduc_ratio // reduc_ratio`` = 1, a one-channel bottleneck; this block does it right.
"""

from __future__ import annotations

import torch
from torch import nn

from opreid_bench.modeling.layers.positions import as_positions, from_positions


class NonLocalBlock(nn.Module):
    """z = x + W(y), y_i = (1/N) sum_j theta(x_i)^T phi(x_j) g(x_j); W = 1x1 conv + BN, zero-initialised BN.

    Zero-initialising W's BN makes the block the identity at the start, so ImageNet weights are not disturbed.
    """

    def __init__(self, in_channels: int, reduc_ratio: int = 2) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.inter_channels = max(1, in_channels // reduc_ratio)
        self.g = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.theta = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.W = nn.Sequential(nn.Conv2d(self.inter_channels, in_channels, 1), nn.BatchNorm2d(in_channels))
        # convs keep PyTorch's default init (as AGW / fast-reid); only W's BN starts at zero.
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        g_x = as_positions(self.g(x))  # (B, N, C')
        theta_x = as_positions(self.theta(x))  # (B, N, C')
        phi_x = as_positions(self.phi(x))  # (B, N, C')
        # Non-local, dot-product form: f(x_i, x_j) = theta(x_i)^T phi(x_j), normalised by N = h*w
        f = torch.bmm(theta_x, phi_x.transpose(1, 2)) / (h * w)
        y = torch.bmm(f, g_x)  # (B, N, C')
        return x + self.W(from_positions(y, h, w))
