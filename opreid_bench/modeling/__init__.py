"""The paper's model components and the reference ReID network (bot / baseline / ours).

``build_model(ModelConfig(...), num_classes)`` -> ``ReIDModel``; losses in ``opreid_bench.modeling.losses``.
"""

from opreid_bench.modeling.backbones import BACKBONES, build_backbone, load_pretrained
from opreid_bench.modeling.config import ModelConfig
from opreid_bench.modeling.model import ReIDModel, build_model, count_parameters

__all__ = [
    "BACKBONES",
    "ModelConfig",
    "ReIDModel",
    "build_backbone",
    "build_model",
    "count_parameters",
    "load_pretrained",
]
