"""``resnet_mini``: a compact ResNet for training from random weights on a CPU budget (the demo on a machine without
ImageNet weights).

ResNet-50 and MobileNetV2 are built to be fine-tuned from ImageNet: from random weights, on a few thousand crops
and a few minutes of CPU, they stay near chance (MobileNetV2 also runs about 8x slower per crop than this network).
``resnet_mini`` keeps the input detail and spends little compute on it:

- stem: 3x3 conv stride 2 (16 channels) + BN + ReLU + 3x3 max pool stride 2, so a 128x64 crop enters the first
  stage at 32x16 (a plain 64x32 input at the same stage sizes learned clearly less in the demo's budget); in
  training the BN, ReLU and pool run fused (``modeling/layers/stem_pool.py``: the same function, fewer passes);
- 4 stages of one BasicBlock each (He et al. 2016), 16-32-64-128 channels, strides 1, 2, 2, ``last_stride``;
- IBN-a (Pan et al., ECCV 2018) in stages 1-3: the first normalisation of each block is half InstanceNorm, half
  BatchNorm, so per-image contrast and colour cast (what a camera adds) are normalised away early; it learned
  faster from scratch in the demo;
- a 1x1 conv + BN + ReLU widening the last map to 512 channels (cheap at 8x4), the retrieval feature's size.

A 128x64 input gives an 8x4x512 last feature map with ``last_stride=1``. No ImageNet checkpoint exists for it; the
parameter names follow torchvision's ResNet (``conv1``, ``bn1``, ``layerN.M.conv1``...) for readability only.
Attention sites, the analogue of AGW's "2 in stage 2, 3 in stage 3" at this depth: after the block of ``layer2``
(32 channels) and after the block of ``layer3`` (64 channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from opreid_bench.modeling.backbones.base import Backbone, kaiming_init_
from opreid_bench.modeling.layers.stem_pool import bn_relu_maxpool


class IBN(nn.Module):
    """IBN-a normalisation: InstanceNorm (affine) on the first half of the channels, BatchNorm on the rest."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.half = planes // 2
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.IN(a.contiguous()), self.BN(b.contiguous())], dim=1)


class BasicBlock(nn.Module):
    """torchvision BasicBlock: 3x3 conv (stride) + norm + ReLU, 3x3 conv + BN, residual (1x1 conv + BN when the
    shape changes); ``ibn`` makes the first norm an :class:`IBN`."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, ibn: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1: nn.Module = IBN(planes) if ibn else nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class CompactResNet(Backbone):
    """Stem (conv stride 2 + max pool) -> 4 stages of BasicBlocks (``widths``, ``blocks``; IBN-a in the first
    ``ibn_stages``) -> optional 1x1 conv to ``out_width`` channels (``layer5``)."""

    head_prefixes = ("fc.",)

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), blocks: Sequence[int] = (1, 1, 1, 1), *,
                 stem_width: int = 16, ibn_stages: int = 3, out_width: int = 512, last_stride: int = 1,
                 include_top: bool = False, num_classes: int = 1000) -> None:
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"CompactResNet needs 4 stages with >= 1 block each, got {widths} / {blocks}")
        self.conv1 = nn.Conv2d(3, stem_width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = stem_width
        for i, (planes, n, stride) in enumerate(zip(widths, blocks, (1, 2, 2, last_stride), strict=True), start=1):
            ibn = i <= ibn_stages
            layer = [BasicBlock(inplanes, planes, stride, ibn)] + [BasicBlock(planes, planes, 1, ibn)
                                                                   for _ in range(1, n)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
            inplanes = planes
        self._stage_names = [f"layer{i}" for i in range(1, 5)]
        if out_width:
            self.layer5 = nn.Sequential(nn.Sequential(nn.Conv2d(inplanes, out_width, 1, bias=False),
                                                      nn.BatchNorm2d(out_width), nn.ReLU(inplace=True)))
            self._stage_names.append("layer5")
            inplanes = out_width
        self.out_channels = int(inplanes)
        self.include_top = include_top
        if include_top:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(self.out_channels, num_classes)
        self.attention_sites = tuple([("layer2", i, int(widths[1])) for i in range(blocks[1])]
                                     + [("layer3", i, int(widths[2])) for i in range(blocks[2])])
        kaiming_init_(self)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return bn_relu_maxpool(self.conv1(x), self.bn1, self.maxpool)  # maxpool(relu(bn1(conv1(x))))

    def stages(self) -> Sequence[tuple[str, nn.Sequential]]:
        return [(name, getattr(self, name)) for name in self._stage_names]

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet_mini(last_stride: int = 1, include_top: bool = False) -> CompactResNet:
    """The compact ResNet (16-32-64-128 BasicBlocks, IBN-a, 512-channel output) for training from random weights."""
    return CompactResNet(last_stride=last_stride, include_top=include_top)
