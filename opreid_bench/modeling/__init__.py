"""The paper's model components and the reference ReID network (bot / baseline / ours).

``build_model(ModelConfig(...), num_classes)`` -> ``ReIDModel``; losses in ``opreid_bench.modeling.losses``.

Importing this package (or :mod:`opreid_bench.modeling.config`) does not import torch: the names that need it
(backbones, the model) load on first access, so the command line and torch-free paths (``evaluate --features``,
``evaluate --onnx``) start without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from opreid_bench.modeling.config import ModelConfig

if TYPE_CHECKING:
    from opreid_bench.modeling.backbones import BACKBONES, build_backbone, load_pretrained
    from opreid_bench.modeling.model import ReIDModel, build_model, count_parameters

_LAZY = {
    "BACKBONES": "opreid_bench.modeling.backbones",
    "build_backbone": "opreid_bench.modeling.backbones",
    "load_pretrained": "opreid_bench.modeling.backbones",
    "ReIDModel": "opreid_bench.modeling.model",
    "build_model": "opreid_bench.modeling.model",
    "count_parameters": "opreid_bench.modeling.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if not name.startswith("__"):  # a submodule not imported yet (``opreid_bench.modeling.backbones``)
            try:
                return importlib.import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BACKBONES",
    "ModelConfig",
    "ReIDModel",
    "build_backbone",
    "build_model",
    "count_parameters",
    "load_pretrained",
]
