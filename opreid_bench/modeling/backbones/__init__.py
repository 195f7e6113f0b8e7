"""Backbones with torchvision parameter names, registered by name (``BACKBONES``), plus ``load_pretrained``."""

from __future__ import annotations

from opreid_bench.modeling.backbones.base import ATTENTION_PREFIX, Backbone
from opreid_bench.modeling.backbones.compact import CompactResNet, resnet_mini
from opreid_bench.modeling.backbones.mobilenetv2 import MobileNetV2, mobilenetv2
from opreid_bench.modeling.backbones.pretrained import LoadReport, load_pretrained
from opreid_bench.modeling.backbones.resnet import ResNet, resnet50
from opreid_bench.registry import Registry

BACKBONES: Registry = Registry("backbone")
BACKBONES.register("resnet50")(resnet50)
BACKBONES.register("mobilenetv2")(mobilenetv2)
BACKBONES.register("resnet_mini")(resnet_mini)  # compact, for training from scratch (no ImageNet weights)


def build_backbone(name: str, *, last_stride: int = 1, include_top: bool = False) -> Backbone:
    """Construct the backbone registered as ``name`` (randomly initialised, torchvision init)."""
    return BACKBONES.get(name)(last_stride=last_stride, include_top=include_top)


__all__ = [
    "ATTENTION_PREFIX",
    "BACKBONES",
    "Backbone",
    "CompactResNet",
    "LoadReport",
    "MobileNetV2",
    "ResNet",
    "build_backbone",
    "load_pretrained",
    "mobilenetv2",
    "resnet50",
    "resnet_mini",
]
