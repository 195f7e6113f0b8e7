"""OSNet-AIN (Zhou et al., TPAMI 2021) with torchreid's module and parameter names (``osnet_ain.py`` of torchreid
0.2.5), so its checkpoints load as they are.

It differs from OSNet (:mod:`.torchreid_osnet`) in three places: the four streams of a block are a ``ModuleList``
``conv2`` of ``LightConvStream`` (1-4 lightweight 3x3 convolutions each); some blocks (``OSBlockINin``) put an
affine instance norm inside the residual branch, after a BN-free 1x1 expansion; and the stage transitions are
separate modules ``pool2``/``pool3``. ``conv1`` uses instance norm. The eval-mode forward returns the ``fc`` output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from opreid_bench.modeling.zoo.torchreid_osnet import (
    OSNET_CHANNELS,
    ChannelGate,
    Conv1x1,
    Conv1x1Linear,
    ConvLayer,
    LightConv3x3,
)


class LightConvStream(nn.Module):
    """``depth`` lightweight 3x3 convolutions in a row."""

    def __init__(self, cin: int, cout: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(LightConv3x3(cin, cout), *(LightConv3x3(cout, cout) for _ in range(depth - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AINBlock(nn.Module):
    """torchreid's ``OSBlock`` (``instance_norm=False``) or ``OSBlockINin`` (``True``) of OSNet-AIN."""

    def __init__(self, cin: int, cout: int, instance_norm: bool, reduction: int = 4, streams: int = 4) -> None:
        super().__init__()
        mid = cout // reduction
        self.conv1 = Conv1x1(cin, mid)
        self.conv2 = nn.ModuleList(LightConvStream(mid, mid, t) for t in range(1, streams + 1))
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, cout, bn=not instance_norm)
        self.downsample = Conv1x1Linear(cin, cout) if cin != cout else None
        self.IN = nn.InstanceNorm2d(cout, affine=True) if instance_norm else None  # noqa: N815 - torchreid's name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = sum(self.gate(stream(x1)) for stream in self.conv2)
        x3 = self.conv3(x2)
        if self.IN is not None:
            x3 = self.IN(x3)
        return F.relu(x3 + (self.downsample(x) if self.downsample is not None else x))


# Which blocks carry instance norm, per stage (torchreid: [[INin, INin], [OS, INin], [INin, OS]]).
AIN_PATTERN = ((True, True), (False, True), (True, False))


class OSNetAIN(nn.Module):
    """OSNet-AIN's feature extractor (module docstring); ``forward`` returns the (B, 512) feature."""

    def __init__(self, channels: tuple[int, int, int, int], feature_dim: int = 512) -> None:
        super().__init__()
        self.conv1 = ConvLayer(3, channels[0], 7, stride=2, padding=3, instance_norm=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = self._stage(AIN_PATTERN[0], channels[0], channels[1])
        self.pool2 = nn.Sequential(Conv1x1(channels[1], channels[1]), nn.AvgPool2d(2, stride=2))
        self.conv3 = self._stage(AIN_PATTERN[1], channels[1], channels[2])
        self.pool3 = nn.Sequential(Conv1x1(channels[2], channels[2]), nn.AvgPool2d(2, stride=2))
        self.conv4 = self._stage(AIN_PATTERN[2], channels[2], channels[3])
        self.conv5 = Conv1x1(channels[3], channels[3])
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channels[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    @staticmethod
    def _stage(pattern: tuple[bool, ...], cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(*(AINBlock(cin if i == 0 else cout, cout, inorm) for i, inorm in enumerate(pattern)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2(self.conv2(self.maxpool(self.conv1(x))))
        x = self.conv5(self.conv4(self.pool3(self.conv3(x))))
        return self.fc(torch.flatten(self.global_avgpool(x), 1))


def osnet_ain(name: str) -> OSNetAIN:
    """``osnet_ain_x1_0``, ``_x0_75``, ``_x0_5`` or ``_x0_25`` (the widths of the plain OSNet of the same name)."""
    return OSNetAIN(OSNET_CHANNELS[name.replace("osnet_ain_", "osnet_")])
