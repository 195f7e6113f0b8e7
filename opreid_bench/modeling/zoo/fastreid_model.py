"""fast-reid's ``Baseline`` (``build_resnet_backbone`` + ``EmbeddingHead``) with fast-reid's parameter names, so its
checkpoints load as they are.

The layout follows fast-reid 1.x (``fastreid/modeling/backbones/resnet.py``, ``heads/embedding_head.py``,
``layers/batch_norm.py``, ``non_local.py``, ``se_layer.py``, ``pooling.py``), including what differs from torchvision:

* the stem's max pool has no padding and rounds up (``MaxPool2d(3, 2, ceil_mode=True)``);
* IBN-a (``WITH_IBN``): the first norm of every block of stages 1-3 is ``bn1.IN`` (InstanceNorm, affine, on the
  first ``int(planes / 2)`` channels) beside ``bn1.BN`` (BatchNorm on the rest); stage 4 has none;
* SE (``WITH_SE``): ``se.fc`` (Linear C -> C/16 -> C, no biases, ReLU, sigmoid) scales the block's output before
  the residual sum, in every stage;
* non-local (``WITH_NL``): ``backbone.NL_1`` ... ``NL_4`` after the last 0 / 2 / 3 / 0 blocks of the stages of a
  ResNet-50 (0 / 2 / 9 / 0 for 101; none for 18 and 34), each with fast-reid's single inner channel
  (``reduc_ratio // reduc_ratio``) and its ``f / N`` attention;
* the head: ``heads.pool_layer`` (GeM's ``p`` is 3; ``GeneralizedMeanPoolingP`` learns it as ``heads.pool_layer.p``),
  then ``heads.bottleneck``: an optional 1x1 conv to ``EMBEDDING_DIM`` (``bottleneck.0``) and the BNNeck, then the
  feature at spatial position (0, 0).

In eval mode fast-reid's ``EmbeddingHead`` returns the bottleneck output whatever ``NECK_FEAT`` says (that key picks
the feature of the training losses only), and ``Baseline`` returns the head's output; so does this model, on input
already normalised with the config's PIXEL_MEAN / PIXEL_STD (fast-reid normalises inside the model; here the crop
transform does it). BatchNorm everywhere (syncBN and GhostBN compute the same in eval mode); the classifier is left
out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from opreid_bench.modeling.zoo.fastreid_config import FastreidConfig

BLOCKS = {"18x": (2, 2, 2, 2), "34x": (3, 4, 6, 3), "50x": (3, 4, 6, 3), "101x": (3, 4, 23, 3)}
NON_LOCAL = {"18x": (0, 0, 0, 0), "34x": (0, 0, 0, 0), "50x": (0, 2, 3, 0), "101x": (0, 2, 9, 0)}


class IBN(nn.Module):
    """IBN-a: InstanceNorm (affine) on the first half of the channels, BatchNorm on the rest."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.half = int(planes / 2)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, rest = torch.split(x, self.half, 1)
        return torch.cat((self.IN(first.contiguous()), self.BN(rest.contiguous())), 1)


class SELayer(nn.Module):
    """Squeeze-and-excitation: global average -> Linear C->C/r -> ReLU -> Linear -> sigmoid -> scale."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        hidden = int(channels / reduction)
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[1]
        return x * self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)


def _norm1(planes: int, with_ibn: bool) -> nn.Module:
    return IBN(planes) if with_ibn else nn.BatchNorm2d(planes)


class BasicBlock(nn.Module):
    """fast-reid's ResNet-18/34 block (IBN-a on ``bn1``, optional SE before the residual sum)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, with_ibn: bool, with_se: bool, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm1(planes, with_ibn)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.se = SELayer(planes) if with_se else nn.Identity()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """fast-reid's ResNet-50/101 block: stride on the 3x3 conv, IBN-a on ``bn1``, optional SE before the sum."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, with_ibn: bool, with_se: bool, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _norm1(planes, with_ibn)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.se = SELayer(planes * 4) if with_se else nn.Identity()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class NonLocal(nn.Module):
    """fast-reid's ``Non_local`` block: dot-product attention over the N positions, divided by N, through one
    inner channel; ``W`` (1x1 conv + BatchNorm) maps it back and is added to the input."""

    def __init__(self, in_channels: int, reduc_ratio: int = 2) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.inter_channels = reduc_ratio // reduc_ratio  # fast-reid's expression: always 1
        self.g = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.W = nn.Sequential(nn.Conv2d(self.inter_channels, in_channels, 1), nn.BatchNorm2d(in_channels))
        self.theta = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        g_x = self.g(x).view(b, self.inter_channels, -1).permute(0, 2, 1)
        theta_x = self.theta(x).view(b, self.inter_channels, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(b, self.inter_channels, -1)
        f = torch.matmul(theta_x, phi_x)
        y = torch.matmul(f / f.shape[-1], g_x)
        y = y.permute(0, 2, 1).contiguous().view(b, self.inter_channels, *x.shape[2:])
        return self.W(y) + x


class FastreidResNet(nn.Module):
    """``build_resnet_backbone``: conv1/bn1/maxpool stem, ``layer1``-``layer4``, optional ``NL_1``-``NL_4``."""

    def __init__(self, depth: str, last_stride: int, with_ibn: bool, with_se: bool, with_nl: bool) -> None:
        super().__init__()
        block = BasicBlock if depth in ("18x", "34x") else Bottleneck
        layers = BLOCKS[depth]
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, with_ibn, with_se)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, with_ibn, with_se)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, with_ibn, with_se)
        self.layer4 = self._make_layer(block, 512, layers[3], last_stride, False, with_se)
        self.out_channels = 512 * block.expansion
        # block indices (per stage) followed by a non-local block: the last n blocks, ascending
        self.nl_after: list[list[int]] = [[], [], [], []]
        if with_nl:
            for stage, (n, channels) in enumerate(zip(NON_LOCAL[depth], (256, 512, 1024, 2048)), start=1):
                setattr(self, f"NL_{stage}", nn.ModuleList(NonLocal(channels) for _ in range(n)))
                self.nl_after[stage - 1] = sorted(layers[stage - 1] - (i + 1) for i in range(n))

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int, with_ibn: bool,
                    with_se: bool) -> nn.Sequential:
        downsample = None
        expansion = block.expansion  # type: ignore[attr-defined]
        if stride != 1 or self.inplanes != planes * expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * expansion))
        out = [block(self.inplanes, planes, with_ibn, with_se, stride, downsample)]
        self.inplanes = planes * expansion
        out += [block(self.inplanes, planes, with_ibn, with_se) for _ in range(1, blocks)]
        return nn.Sequential(*out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), start=1):
            after = self.nl_after[stage - 1]
            for i, block in enumerate(layer):
                x = block(x)
                if i in after:
                    x = getattr(self, f"NL_{stage}")[after.index(i)](x)
        return x


class GeneralizedMeanPooling(nn.Module):
    """GeM: ``mean(clamp(x, eps) ** p) ** (1 / p)`` over the map; ``p`` fixed at 3, or learnt (fast-reid's
    ``GeneralizedMeanPoolingP``, the parameter ``p``)."""

    def __init__(self, learnable: bool, norm: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p: torch.Tensor | float = nn.Parameter(torch.ones(1) * norm) if learnable else float(norm)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), (1, 1)).pow(1.0 / self.p)


class FastGlobalAvgPool(nn.Module):
    """The mean over the flattened map (fast-reid's ``FastGlobalAvgPool``), kept (N, C, 1, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], -1).mean(-1).reshape(x.shape[0], x.shape[1], 1, 1)


class AdaptiveAvgMaxPool(nn.Module):
    """The mean plus the maximum over the map."""

    def __init__(self) -> None:
        super().__init__()
        self.gap = FastGlobalAvgPool()
        self.gmp = nn.AdaptiveMaxPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gap(x) + self.gmp(x)


class ClipGlobalAvgPool(nn.Module):
    """The mean over the map clamped to [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.avgpool = FastGlobalAvgPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.avgpool(x), min=0.0, max=1.0)


def pool_layer(name: str) -> nn.Module:
    """The module of a fast-reid ``POOL_LAYER`` name (fastreid_config.POOL_LAYERS), with fast-reid's submodule
    names."""
    layers = {
        "GlobalAvgPool": lambda: nn.AdaptiveAvgPool2d(1),
        "FastGlobalAvgPool": FastGlobalAvgPool,
        "GlobalMaxPool": lambda: nn.AdaptiveMaxPool2d(1),
        "GeneralizedMeanPooling": lambda: GeneralizedMeanPooling(learnable=False),
        "GeneralizedMeanPoolingP": lambda: GeneralizedMeanPooling(learnable=True),
        "AdaptiveAvgMaxPool": AdaptiveAvgMaxPool,
        "ClipGlobalAvgPool": ClipGlobalAvgPool,
        "Identity": nn.Identity,
    }
    return layers[name]()


class EmbeddingHead(nn.Module):
    """``heads``: pool -> ``bottleneck`` (optional 1x1 conv to the embedding, optional BNNeck) -> position (0, 0)."""

    def __init__(self, feat_dim: int, pool: str, embedding_dim: int, with_bnneck: bool) -> None:
        super().__init__()
        self.pool_layer = pool_layer(pool)
        neck: list[nn.Module] = []
        if embedding_dim > 0:
            neck.append(nn.Conv2d(feat_dim, embedding_dim, 1, 1, bias=False))
            feat_dim = embedding_dim
        if with_bnneck:
            neck.append(nn.BatchNorm2d(feat_dim))
        self.bottleneck = nn.Sequential(*neck)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.pool_layer(features))[..., 0, 0]


class FastreidBaseline(nn.Module):
    """``backbone`` + ``heads``; eval-mode ``forward`` = fast-reid's ``Baseline`` in eval mode on normalised input."""

    def __init__(self, cfg: FastreidConfig) -> None:
        super().__init__()
        self.backbone = FastreidResNet(cfg.depth, cfg.last_stride, cfg.with_ibn, cfg.with_se, cfg.with_nl)
        self.heads = EmbeddingHead(cfg.feat_dim, cfg.pool_layer, cfg.embedding_dim, cfg.with_bnneck)
        self.feature_dim = cfg.feature_dim
        self.description = cfg.describe()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.backbone(x))


def build_fastreid(cfg: FastreidConfig) -> FastreidBaseline:
    """The model of ``cfg`` (random weights; load a checkpoint into it), fast-reid's parameter names."""
    return FastreidBaseline(cfg)


__all__ = ["EmbeddingHead", "FastreidBaseline", "FastreidResNet", "NonLocal", "build_fastreid", "pool_layer"]
