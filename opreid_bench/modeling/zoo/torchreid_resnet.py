"""torchreid's ``resnet50`` and ``resnet50_fc512``: torchvision's ResNet-50 layout (the same parameter names) with
torchreid's last stride and feature head, so their checkpoints load as they are.

``resnet50``: last stride 2, the feature is the 2048-d global average pool. ``resnet50_fc512``: last stride 1, then
``fc`` (Linear 512 + BatchNorm1d + ReLU), the feature is its 512-d output. As in torchreid's eval-mode forward, no
normalisation; ``classifier`` is left out.
"""

from __future__ import annotations

import torch
from torch import nn

from opreid_bench.modeling.backbones.resnet import ResNet


class TorchreidResNet(ResNet):
    """ResNet-50 trunk (torchvision names) + global average pool + optional ``fc`` head (module docstring)."""

    def __init__(self, last_stride: int, fc_dim: int | None) -> None:
        super().__init__((3, 4, 6, 3), last_stride=last_stride)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = None if fc_dim is None else nn.Sequential(
            nn.Linear(self.out_channels, fc_dim), nn.BatchNorm1d(fc_dim), nn.ReLU(inplace=True))
        self.feature_dim = self.out_channels if fc_dim is None else fc_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        v = torch.flatten(self.global_avgpool(x), 1)
        return v if self.fc is None else self.fc(v)


def resnet50() -> TorchreidResNet:
    return TorchreidResNet(last_stride=2, fc_dim=None)


def resnet50_fc512() -> TorchreidResNet:
    return TorchreidResNet(last_stride=1, fc_dim=512)
