"""Self-describing checkpoints: weights + the method config + everything ``--resume`` needs, written atomically.

Layout (a dict saved with ``torch.save``; loads with ``weights_only=True``)::

    format: "opreid-bench-checkpoint", version: 1
    method, config (MethodConfig.to_dict()), num_classes, dataset, epoch (epochs completed)
    model (state_dict; ME's mu buffer included), and for training checkpoints:
    optimizer, scheduler, scaler (AMP), rng (python / numpy / torch / cuda states), metrics (last epoch's log line)

``RUN_DIR/checkpoints/last.pt`` holds all of it after every epoch; ``RUN_DIR/model.pt`` (the final weights) leaves
out the optimizer and RNG states. ``evaluate``/``extract`` rebuild the model from the stored config alone.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opreid_bench.atomic import atomic_path
from opreid_bench.engine.config import MethodConfig, config_from_dict
from opreid_bench.errors import CheckpointError, ConfigError
from opreid_bench.torch_files import load_torch_file

CHECKPOINT_FORMAT = "opreid-bench-checkpoint"
CHECKPOINT_VERSION = 1


class UnreadableCheckpointError(CheckpointError):
    """The file is not a readable torch file at all (zero-length, truncated, garbage): e.g. a crash mid-write."""


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def rng_state() -> dict[str, Any]:
    """Python, numpy (legacy global), torch CPU and CUDA generator states, in a weights_only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    cfg: MethodConfig,
    num_classes: int,
    dataset: str,
    epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    metrics: dict[str, Any] | None = None,
    with_rng: bool = True,
) -> Path:
    """Write a self-describing checkpoint atomically (a killed job leaves the previous file intact)."""
    state: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "method": cfg.method,
        "config": cfg.to_dict(),
        "num_classes": int(num_classes),
        "dataset": dataset,
        "epoch": int(epoch),
        "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "metrics": metrics or {},
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    if with_rng:
        state["rng"] = rng_state()
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # through a file object: torch.save names the zip's root folder after a path it is given (here the random
        # temporary name), so the same state would give different bytes on every save
        torch.save(state, fh)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint (on CPU); a missing, corrupt or foreign file is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    state = load_torch_file(path, "checkpoint", UnreadableCheckpointError)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not an opreid-bench checkpoint (no 'format: {CHECKPOINT_FORMAT}'; a bare state_dict or a "
            "torchvision file goes to --pretrained / model.pretrained instead)"
        )
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than this opreid-bench")
    for key in ("method", "config", "num_classes", "model", "epoch"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    return state


def checkpoint_config(state: dict[str, Any], path: str | Path) -> MethodConfig:
    """The MethodConfig a checkpoint was trained with."""
    try:
        return config_from_dict(state["config"], f"{path} (stored config)")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from exc


def load_model_state(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: str | Path) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming the first missing/unexpected/mis-shaped key."""
    own = unwrap(model).state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [(k, tuple(state_dict[k].shape), tuple(v.shape)) for k, v in own.items()
              if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        bits = []
        if shapes:
            k, got, want = shapes[0]
            bits.append(f"{len(shapes)} shape mismatch(es), e.g. '{k}' is {got} but the model has {want}")
        if missing:
            bits.append(f"{len(missing)} missing key(s), e.g. '{missing[0]}'")
        if unexpected:
            bits.append(f"{len(unexpected)} unexpected key(s), e.g. '{unexpected[0]}'")
        raise CheckpointError(f"{path}: weights do not fit the model: {'; '.join(bits)}")
    unwrap(model).load_state_dict(state_dict, strict=True)


def load_model_from_checkpoint(
    path: str | Path,
    *,
    expect_method: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, MethodConfig, dict[str, Any]]:
    """Rebuild the model a checkpoint describes (no config file, no pretrained file needed) in eval mode.

    ``expect_method``: the ``--method`` the user named; a checkpoint of another method is an error.
    """
    from opreid_bench.modeling import build_model

    state = load_checkpoint(path)
    if expect_method is not None and state["method"] != expect_method:
        raise CheckpointError(
            f"{path}: checkpoint is of method '{state['method']}', not '{expect_method}' (pass --method "
            f"{state['method']} or the right --weights)"
        )
    cfg = checkpoint_config(state, path)
    # the stored weights replace the ImageNet initialisation: no pretrained file is needed to rebuild
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), int(state["num_classes"]))
    load_model_state(model, state["model"], path)
    model.to(device).eval()
    return model, cfg, state
