"""OSNet (Zhou et al., ICCV 2019) with torchreid's module and parameter names, so torchreid checkpoints load as they are.

The layout follows torchreid 0.2.5's ``torchreid/reid/models/osnet.py``: ``conv1`` (7x7/2 conv + BN or, for the IBN
variant, affine instance norm) and a 3x3/2 max pool; three stages ``conv2``-``conv4`` of omni-scale blocks (a 1x1
reduction, four streams of 1-4 lightweight 3x3 convolutions with one shared channel gate, a 1x1 expansion, a
residual), the first two followed by a 1x1 conv and a 2x2 average pool; ``conv5`` (1x1); global average pooling; ``fc``
(Linear 512 + BatchNorm1d + ReLU). In eval mode the forward returns the ``fc`` output: what torchreid extracts as the
feature. ``classifier`` is left out: a checkpoint's classifier (any number of classes) is not needed for features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvLayer(nn.Module):
    """k x k conv + BN (or affine instance norm, ``instance_norm``) + ReLU."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, instance_norm: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False)
        self.bn = nn.InstanceNorm2d(cout, affine=True) if instance_norm else nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1(ConvLayer):
    """1x1 conv + BN + ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 1)


class Conv1x1Linear(nn.Module):
    """1x1 conv + BN (``bn=False``: no BN), no non-linearity."""

    def __init__(self, cin: int, cout: int, bn: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.bn is None else self.bn(x)


class LightConv3x3(nn.Module):
    """1x1 (linear) then depth-wise 3x3, BN, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False, groups=cout)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """The unified aggregation gate: global pooling, 1x1 (C/16), ReLU, 1x1 (C), sigmoid; scales its input."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True)
        self.gate_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate_activation(self.fc2(self.relu(self.fc1(self.global_avgpool(x)))))


class OSBlock(nn.Module):
    """Omni-scale block: four streams of 1-4 lightweight 3x3 convolutions, one shared gate, a residual."""

    def __init__(self, cin: int, cout: int, instance_norm: bool = False, bottleneck_reduction: int = 4) -> None:
        super().__init__()
        mid = cout // bottleneck_reduction
        self.conv1 = Conv1x1(cin, mid)
        self.conv2a = LightConv3x3(mid, mid)
        self.conv2b = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(2)))
        self.conv2c = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(3)))
        self.conv2d = nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(4)))
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, cout)
        self.downsample = Conv1x1Linear(cin, cout) if cin != cout else None
        self.IN = nn.InstanceNorm2d(cout, affine=True) if instance_norm else None  # noqa: N815 - torchreid's name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = (self.gate(self.conv2a(x1)) + self.gate(self.conv2b(x1)) + self.gate(self.conv2c(x1))
              + self.gate(self.conv2d(x1)))
        out = self.conv3(x2) + (self.downsample(x) if self.downsample is not None else x)
        if self.IN is not None:
            out = self.IN(out)
        return F.relu(out)


class OSNet(nn.Module):
    """OSNet's feature extractor (module docstring); ``forward`` returns the (B, 512) feature."""

    def __init__(self, channels: tuple[int, int, int, int], layers: tuple[int, int, int] = (2, 2, 2),
                 feature_dim: int = 512, instance_norm: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvLayer(3, channels[0], 7, stride=2, padding=3, instance_norm=instance_norm)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = self._stage(layers[0], channels[0], channels[1], reduce=True, instance_norm=instance_norm)
        self.conv3 = self._stage(layers[1], channels[1], channels[2], reduce=True)
        self.conv4 = self._stage(layers[2], channels[2], channels[3], reduce=False)
        self.conv5 = Conv1x1(channels[3], channels[3])
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channels[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))
        self.feature_dim = feature_dim

    @staticmethod
    def _stage(n: int, cin: int, cout: int, reduce: bool, instance_norm: bool = False) -> nn.Sequential:
        blocks: list[nn.Module] = [OSBlock(cin, cout, instance_norm)]
        blocks += [OSBlock(cout, cout, instance_norm) for _ in range(1, n)]
        if reduce:
            blocks.append(nn.Sequential(Conv1x1(cout, cout), nn.AvgPool2d(2, stride=2)))
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.conv4(self.conv3(self.conv2(self.maxpool(self.conv1(x))))))
        return self.fc(torch.flatten(self.global_avgpool(x), 1))


OSNET_CHANNELS = {
    "osnet_x1_0": (64, 256, 384, 512),
    "osnet_x0_75": (48, 192, 288, 384),
    "osnet_x0_5": (32, 128, 192, 256),
    "osnet_x0_25": (16, 64, 96, 128),
    "osnet_ibn_x1_0": (64, 256, 384, 512),
}


def osnet(name: str) -> OSNet:
    """One of :data:`OSNET_CHANNELS`' architectures (``osnet_ibn_*``: instance norm in ``conv1`` and ``conv2``)."""
    return OSNet(OSNET_CHANNELS[name], instance_norm=name.startswith("osnet_ibn"))
