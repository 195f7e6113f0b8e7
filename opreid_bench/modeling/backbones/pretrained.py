"""load_pretrained: torchvision ImageNet checkpoints from a local path into our torchvision-named backbones.

Never downloads. A checkpoint must match by name and shape; the only keys allowed to differ are the ones the two
architectures legitimately do not share: the ImageNet head (``fc.*`` / ``classifier.*``) when the backbone was built
without it, and the inserted attention blocks (``attention.*``), which keep their own initialisation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from opreid_bench.errors import CheckpointError
from opreid_bench.modeling.backbones.base import ATTENTION_PREFIX, Backbone


@dataclass
class LoadReport:
    """What a pretrained load did: keys loaded, model keys left at their init, checkpoint keys ignored."""

    path: str
    loaded: list[str] = field(default_factory=list)
    kept_init: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _read_state_dict(path: Path) -> dict:
    from opreid_bench.torch_files import load_torch_file

    obj = load_torch_file(path, "PyTorch checkpoint", CheckpointError)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise CheckpointError(f"{path}: is not a state dict of tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_pretrained(model: Backbone, path: str | os.PathLike[str]) -> LoadReport:
    """Load a local torchvision checkpoint into ``model``; raise CheckpointError on a missing file or any mismatch."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: pretrained checkpoint not found (model.pretrained must be a local file)")
    state = _read_state_dict(path)
    own = model.state_dict()
    report = LoadReport(path=str(path))
    head_prefixes = () if getattr(model, "include_top", False) else tuple(model.head_prefixes)
    for key, value in state.items():
        if key not in own:
            if key.startswith(head_prefixes):
                report.ignored.append(key)
                continue
            raise CheckpointError(
                f"{path}: key '{key}' does not exist in {type(model).__name__} (is this a checkpoint of another "
                "architecture?)"
            )
        if tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{path}: '{key}' has shape {tuple(value.shape)}, {type(model).__name__} expects {tuple(own[key].shape)}"
            )
        report.loaded.append(key)
    missing = [k for k in own if k not in state]
    bad = [k for k in missing if not k.startswith(ATTENTION_PREFIX)]
    if bad:
        raise CheckpointError(f"{path}: lacks {len(bad)} {type(model).__name__} keys, e.g. '{bad[0]}'")
    report.kept_init = missing
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    return report
