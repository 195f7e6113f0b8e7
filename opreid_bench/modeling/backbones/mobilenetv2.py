"""MobileNetV2 (torchvision layout and parameter names: ``features.N...``, ``classifier.1``) with a ReID last stride.

``last_stride=1`` turns the last stride-2 block (``features.14``, the first 160-channel block) into stride 1, as
ResNet's ``layer4`` for ReID; parameter shapes do not change, so ImageNet weights still load with ``strict=True``.

Attention sites, the MobileNetV2 analogue of AGW's "2 in stage 2, 3 in stage 3" of ResNet-50 (stage 2 = stride 8,
stage 3 = stride 16): the last 2 blocks of the stride-8 stage (``features.5``, ``features.6``, 32 channels) and the
last 3 blocks of the stride-16 stage (``features.11``-``features.13``, 96 channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from opreid_bench.modeling.backbones.base import Backbone, kaiming_init_

# (expansion t, output channels c, repeats n, first stride s): torchvision / Sandler et al. 2018, Table 2.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                             (6, 160, 3, 2), (6, 320, 1, 1))
LAST_STRIDE_BLOCK = 14  # features.14: the last block with stride 2


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) + BN + ReLU6, named ``0``, ``1``, ``2`` as torchvision's Conv2dNormActivation."""

    def __init__(self, inp: int, oup: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(inp, oup, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(oup),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 (stride) -> project 1x1, residual when stride 1 and shapes match."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden, kernel_size=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(Backbone):
    """torchvision-compatible MobileNetV2 (width 1.0); ``out_channels`` = 1280 (``features.18``)."""

    head_prefixes = ("classifier.",)

    def __init__(self, last_stride: int = 2, include_top: bool = False, num_classes: int = 1000) -> None:
        super().__init__()
        input_channel, last_channel = 32, 1280
        features: list[nn.Module] = [ConvBNReLU(3, input_channel, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                stride = s if i == 0 else 1
                if len(features) == LAST_STRIDE_BLOCK:
                    stride = last_stride
                features.append(InvertedResidual(input_channel, c, stride, t))
                input_channel = c
        features.append(ConvBNReLU(input_channel, last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.out_channels = last_channel
        self.include_top = include_top
        if include_top:
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_channel, num_classes))
        self.attention_sites = (("features", 5, 32), ("features", 6, 32), ("features", 11, 96),
                                ("features", 12, 96), ("features", 13, 96))
        kaiming_init_(self)

    def stages(self) -> Sequence[tuple[str, nn.Sequential]]:
        return [("features", self.features)]

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def mobilenetv2(last_stride: int = 1, include_top: bool = False) -> MobileNetV2:
    """MobileNetV2 with torchvision's parameter names (3,504,872 parameters with the ImageNet head)."""
    return MobileNetV2(last_stride=last_stride, include_top=include_top)
