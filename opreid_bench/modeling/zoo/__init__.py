"""Models from other toolkits' model zoos, rebuilt here with their parameter names: ``--zoo torchreid:ARCH``.

Neither torchreid nor anything else is imported or downloaded. ``load_zoo_model("torchreid:osnet_x1_0", FILE)``
builds the architecture (:data:`ZOO`), reads the checkpoint the way torchreid writes and publishes it
(``{"state_dict": ...}`` or a bare state dict, with or without ``module.`` prefixes; the classifier, of any size, is
dropped) and loads it strictly: a checkpoint that does not fit is one line naming the file, the counts of missing
and unexpected keys and the first few of each. The model's ``forward`` in eval mode returns what the toolkit's own
eval-mode forward returns; :data:`TORCHREID_PREPROCESSING` is torchreid's default test transform.

How the forward passes were checked against torchreid's own code, offline: ``benchmarks/zoo_parity.py`` loads
torchreid's model files from a source copy (pure PyTorch modules, no install) and compares features of the same
random state dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from opreid_bench.errors import OpreidError
from opreid_bench.registry import Registry

ZOO: Registry[Any] = Registry("zoo architecture")


@dataclass(frozen=True)
class ZooPreprocessing:
    """How the zoo model expects its input: size, RGB order, mean/std on [0, 1] pixels, bilinear resize."""

    height: int = 256
    width: int = 128
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


TORCHREID_PREPROCESSING = ZooPreprocessing()


def _register_torchreid() -> None:
    from opreid_bench.modeling.zoo import torchreid_osnet, torchreid_osnet_ain, torchreid_resnet

    for name in torchreid_osnet.OSNET_CHANNELS:
        ZOO.register(f"torchreid:{name}")(lambda name=name: torchreid_osnet.osnet(name))
    for width in ("x1_0", "x0_75", "x0_5", "x0_25"):
        ZOO.register(f"torchreid:osnet_ain_{width}")(lambda w=width: torchreid_osnet_ain.osnet_ain(f"osnet_ain_{w}"))
    ZOO.register("torchreid:resnet50")(torchreid_resnet.resnet50)
    ZOO.register("torchreid:resnet50_fc512")(torchreid_resnet.resnet50_fc512)


_register_torchreid()

DROPPED_PREFIXES = ("classifier.",)  # not used for features; any number of classes


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside a torchreid checkpoint: ``{"state_dict": sd, ...}`` or ``sd``; ``module.`` stripped."""
    path = Path(path)
    if not path.is_file():
        raise OpreidError(f"{path}: zoo checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable or non-tensor pickle is one line
        raise OpreidError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise OpreidError(f"{path}: no state dict found (expected a dict of tensors or {{'state_dict': ...}})")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_zoo_model(spec: str, weights: str | Path) -> tuple[torch.nn.Module, ZooPreprocessing]:
    """Build ``spec`` (``torchreid:ARCH``) and load ``weights`` strictly (module docstring); eval mode."""
    key = spec.strip().lower()
    if ":" not in key or key.split(":", 1)[0] != "torchreid":
        raise OpreidError(f"--zoo {spec}: use torchreid:ARCH (known: {', '.join(ZOO.names())})")
    if key not in ZOO:
        raise OpreidError(f"--zoo {spec}: unknown architecture (known: {', '.join(ZOO.names())})")
    model = ZOO.get(key)()
    state = {k: v for k, v in read_state_dict(weights).items() if not k.startswith(DROPPED_PREFIXES)}
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {', '.join(missing[:3])})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})" if unexpected else "",
                 f"{len(wrong)} of another shape (e.g. {', '.join(wrong[:3])})" if wrong else ""]
        raise OpreidError(f"{weights}: does not fit {spec}: " + "; ".join(p for p in parts if p) + " keys")
    model.load_state_dict(state, strict=True)
    return model.eval(), TORCHREID_PREPROCESSING
