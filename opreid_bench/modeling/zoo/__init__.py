"""Models from other toolkits' model zoos, rebuilt here with their parameter names: ``--zoo torchreid:ARCH`` and
``--zoo fastreid:CONFIG.yml``.

Neither torchreid nor fast-reid (nor fvcore, detectron2 or anything else) is imported or downloaded.

``load_zoo_model("torchreid:osnet_x1_0", FILE)`` builds the architecture (:data:`ZOO`), reads the checkpoint the
way torchreid writes and publishes it (``{"state_dict": ...}`` or a bare state dict, with or without ``module.``
prefixes; the classifier, of any size, is dropped). :data:`TORCHREID_PREPROCESSING` is torchreid's default test
transform; its evaluation distance is euclidean.

``load_zoo_model("fastreid:PATH/TO/CONFIG.yml", FILE)`` reads the user's fast-reid config (``_BASE_`` chain resolved
as fast-reid resolves it; :mod:`~opreid_bench.modeling.zoo.fastreid_config`), builds its ``Baseline`` (ResNet
18/34/50/101, IBN-a, SE, non-local; ``EmbeddingHead``; :mod:`~opreid_bench.modeling.zoo.fastreid_model`) and reads
the checkpoint the way fast-reid's Checkpointer writes it (``{"model": sd, "optimizer": ..., "scheduler": ...,
"iteration": ...}`` or a bare state dict, ``module.`` prefixes stripped; the classifier ``heads.weight`` /
``heads.classifier.*``, of any size, is dropped; ``pixel_mean`` / ``pixel_std`` buffers, which older fast-reid
versions saved, must equal the config's and are dropped). Its preprocessing is the config's SIZE_TEST, bicubic,
PIXEL_MEAN / PIXEL_STD; its distance TEST.METRIC (fast-reid's default: cosine).

Either way the checkpoint is loaded strictly: one that does not fit is one line naming the file, the counts of
missing, unexpected and differently shaped keys and the first few of each. The model's ``forward`` in eval mode, on
input already normalised as its :class:`ZooPreprocessing` says, returns what the toolkit's own eval-mode forward
returns.

How the forward passes were checked against the toolkits' own code, offline: ``benchmarks/zoo_parity.py`` loads
their model files from source copies (pure PyTorch modules, no install) and compares features of the same random
state dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from opreid_bench.errors import OpreidError
from opreid_bench.registry import Registry

ZOO: Registry[Any] = Registry("zoo architecture")
INTERPOLATIONS = ("bilinear", "bicubic")  # the resize filters a zoo's test transform may use (Pillow's)


@dataclass(frozen=True)
class ZooPreprocessing:
    """How the zoo model expects its input (size, RGB, mean/std on [0, 1] pixels, the resize filter) and the
    distance the zoo evaluates its features with."""

    height: int = 256
    width: int = 128
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    metric: str = "euclidean"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")


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
# fast-reid's classifier, any number of classes: ``heads.weight`` (1.x), ``heads.classifier.*`` (earlier releases)
FASTREID_DROPPED_KEYS = ("heads.weight",)
FASTREID_DROPPED_PREFIXES = ("heads.classifier.",)
FASTREID_PIXEL_BUFFERS = {"pixel_mean": "PIXEL_MEAN", "pixel_std": "PIXEL_STD"}


def read_state_dict(path: str | Path, wrapper: str = "state_dict") -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: ``{wrapper: sd, ...}`` (torchreid: ``state_dict``, fast-reid:
    ``model``) or a bare ``sd``; ``module.`` stripped."""
    path = Path(path)
    if not path.is_file():
        raise OpreidError(f"{path}: zoo checkpoint not found")
    from opreid_bench.torch_files import load_torch_file

    obj = load_torch_file(path, "PyTorch checkpoint", OpreidError)
    if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
        obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise OpreidError(f"{path}: no state dict found (expected a dict of tensors or {{'{wrapper}': ...}}"
                          f"{_what_it_holds(obj, wrapper)})")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


# engine.checkpoint.CHECKPOINT_FORMAT, the mark of a checkpoint `opreid-bench train` wrote (modeling does not import
# engine; a test keeps the two equal)
OWN_CHECKPOINT_FORMAT = "opreid-bench-checkpoint"
# The key each toolkit wraps its state dict in, and the --zoo prefix that reads it.
_WRAPPERS = {"state_dict": ("torchreid", "torchreid:ARCH"), "model": ("fast-reid", "fastreid:CONFIG.yml")}


def _what_it_holds(obj: object, wrapper: str) -> str:
    """What a checkpoint without the expected state dict holds instead: its top-level keys, and the toolkit it
    looks like when another toolkit's wrapper key holds the weights."""
    if not isinstance(obj, dict):
        return f"; it holds a {type(obj).__name__}"
    if not obj:
        return "; it is an empty dict"
    keys = sorted(map(str, obj))
    text = f"; its top-level keys: {', '.join(keys[:6])}" + (", ..." if len(keys) > 6 else "")
    if obj.get("format") == OWN_CHECKPOINT_FORMAT:
        return text + "; it is a checkpoint of `opreid-bench train`: give it as --weights without --zoo"
    for key, (tool, use) in _WRAPPERS.items():
        if key != wrapper and isinstance(obj.get(key), dict):
            return text + f"; it looks like a {tool} checkpoint: use --zoo {use}"
    return text


def load_strictly(model: torch.nn.Module, state: dict[str, torch.Tensor], spec: str, weights: str | Path) -> None:
    """``model.load_state_dict(state, strict=True)``, or one line naming ``weights``: the counts of missing,
    unexpected and differently shaped keys and the first few of each."""
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        shapes = [f"{k} {tuple(state[k].shape)}, the model's {tuple(own[k].shape)}" for k in wrong[:3]]
        parts = [f"{len(missing)} key(s) missing (e.g. {', '.join(missing[:3])})" if missing else "",
                 f"{len(unexpected)} key(s) unexpected (e.g. {', '.join(unexpected[:3])})" if unexpected else "",
                 f"{len(wrong)} key(s) of another shape (e.g. {'; '.join(shapes)})" if wrong else ""]
        raise OpreidError(f"{weights}: does not fit {spec}: " + "; ".join(p for p in parts if p))
    model.load_state_dict(state, strict=True)


def _load_fastreid(spec: str, config: str, weights: str | Path) -> tuple[torch.nn.Module, ZooPreprocessing]:
    from opreid_bench.modeling.zoo.fastreid_config import read_fastreid_config
    from opreid_bench.modeling.zoo.fastreid_model import build_fastreid

    if not config:
        raise OpreidError(f"--zoo {spec}: give the fast-reid config file, e.g. fastreid:configs/Market1501/"
                          "bagtricks_R50.yml")
    if not Path(config).is_file():
        raise OpreidError(f"--zoo {spec}: {config}: fast-reid config not found")
    cfg = read_fastreid_config(config)
    model = build_fastreid(cfg)
    state = read_state_dict(weights, wrapper="model")
    for key, cfg_key in FASTREID_PIXEL_BUFFERS.items():
        if key in state:
            saved = state.pop(key).detach().double().flatten()
            want = torch.tensor(getattr(cfg, cfg_key.lower()), dtype=torch.float64)
            if saved.shape != want.shape or not torch.allclose(saved, want, rtol=1e-5, atol=1e-4):
                raise OpreidError(f"{weights}: its {key} {[round(v, 4) for v in saved.tolist()]} is not {config}'s "
                                  f"MODEL.{cfg_key} {[round(v, 4) for v in want.tolist()]}; give the config the "
                                  "model was trained with")
    state = {k: v for k, v in state.items()
             if k not in FASTREID_DROPPED_KEYS and not k.startswith(FASTREID_DROPPED_PREFIXES)}
    load_strictly(model, state, spec, weights)
    return model.eval(), cfg.preprocessing()


def load_zoo_model(spec: str, weights: str | Path, input_size: tuple[int, int] | None = None,
                   ) -> tuple[torch.nn.Module, ZooPreprocessing]:
    """Build ``spec`` (``torchreid:ARCH`` or ``fastreid:CONFIG.yml``) and load ``weights`` strictly (module
    docstring); eval mode. ``input_size`` (height, width) replaces the toolkit's test size in the returned
    preprocessing: a model trained at 384x128 is evaluated at 384x128 (the networks pool globally, so any size runs).
    """
    model, prep = _load_zoo_model(spec, weights)
    if input_size is not None:
        prep = dataclasses.replace(prep, height=int(input_size[0]), width=int(input_size[1]))
    return model, prep


def _load_zoo_model(spec: str, weights: str | Path) -> tuple[torch.nn.Module, ZooPreprocessing]:
    prefix, sep, rest = spec.strip().partition(":")
    if sep and prefix.strip().lower() == "fastreid":
        return _load_fastreid(spec, rest.strip(), weights)
    key = spec.strip().lower()
    if not sep or prefix.strip().lower() != "torchreid":
        raise OpreidError(f"--zoo {spec}: use torchreid:ARCH (known: {', '.join(ZOO.names())}) or "
                          "fastreid:PATH/TO/CONFIG.yml")
    if key not in ZOO:
        raise OpreidError(f"--zoo {spec}: unknown architecture (known: {', '.join(ZOO.names())})")
    model = ZOO.get(key)()
    state = {k: v for k, v in read_state_dict(weights).items() if not k.startswith(DROPPED_PREFIXES)}
    load_strictly(model, state, spec, weights)
    return model.eval(), TORCHREID_PREPROCESSING
