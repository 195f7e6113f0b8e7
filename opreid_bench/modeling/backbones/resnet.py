"""ResNet-50 (torchvision v1.5 layout and parameter names) with ``last_stride`` for ReID (BoT: last stride 1).

Attention sites follow AGW / fast-reid: non-local (or DNL) blocks after the last 2 blocks of stage 2 (``layer2.2``,
``layer2.3``, 512 channels) and after the last 3 blocks of stage 3 (``layer3.3``-``layer3.5``, 1024 channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from opreid_bench.modeling.backbones.base import Backbone, kaiming_init_
from opreid_bench.modeling.layers.stem_pool import bn_relu_maxpool


class Bottleneck(nn.Module):
    """torchvision Bottleneck (stride on the 3x3 conv), expansion 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(Backbone):
    """torchvision-compatible ResNet; ``include_top`` adds avgpool + ``fc`` (only for ImageNet use / name checks)."""

    head_prefixes = ("fc.",)

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        last_stride: int = 1,
        include_top: bool = False,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], 1)
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], last_stride)
        self.out_channels = 512 * Bottleneck.expansion
        self.include_top = include_top
        if include_top:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(self.out_channels, num_classes)
        # AGW placement: the last 2 blocks of stage 2 and the last 3 blocks of stage 3.
        self.attention_sites = tuple(
            [("layer2", layers[1] - 2 + i, 128 * 4) for i in range(2)]
            + [("layer3", layers[2] - 3 + i, 256 * 4) for i in range(3)]
        )
        kaiming_init_(self)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return bn_relu_maxpool(self.conv1(x), self.bn1, self.maxpool)  # maxpool(relu(bn1(conv1(x))))

    def stages(self) -> Sequence[tuple[str, nn.Sequential]]:
        return [("layer1", self.layer1), ("layer2", self.layer2), ("layer3", self.layer3), ("layer4", self.layer4)]

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet50(last_stride: int = 1, include_top: bool = False) -> ResNet:
    """ResNet-50 with torchvision's parameter names (25,557,032 parameters with the ImageNet head)."""
    return ResNet((3, 4, 6, 3), last_stride=last_stride, include_top=include_top)
