"""Do the zoo architectures compute what the toolkit's own code computes? Checked offline against its source.

``--torchreid-src`` is a folder holding torchreid's source (for example the unpacked PyPI sdist
``torchreid-0.2.5.tar.gz``: ``pip download --no-deps --no-binary :all: torchreid``). Its model files
(``torchreid/reid/models/osnet.py``, ``osnet_ain.py``, ``resnet.py``) are plain PyTorch modules; they are loaded by path, nothing is
installed or imported from the package. For each architecture: torchreid's model with random weights (and random
BatchNorm statistics), its state dict saved the way torchreid saves checkpoints (``{"state_dict": ...}``, with
``module.`` prefixes and a 751-class classifier), loaded through ``opreid_bench.modeling.zoo.load_zoo_model``, and
both models' eval-mode features compared on the same random batch (max abs difference).

``--fastreid-src`` is a folder holding fast-reid's source (the unpacked PyPI sdist ``fastreid-1.4.0.tar.gz``:
``pip download --no-deps --no-binary :all: fastreid``). fast-reid's own config code (``fastreid/config``: its
``CfgNode.load_yaml_with_base``, ``configurable`` and ``defaults.py``), layers, ResNet backbone, ``EmbeddingHead``
and ``Baseline`` are imported from that folder, in this process only; the package ``__init__`` files that would
pull in every backbone, loss and meta-architecture are skipped, and three dependencies are stubbed here: yacs's
``CfgNode`` (a dict with attribute access whose ``merge_from_other_cfg`` decodes strings with ``literal_eval``,
checks types and refuses unknown keys, as yacs does), the empty ``fastreid.modeling.losses`` (training only) and
``fastreid.utils.checkpoint`` (log messages about pretrained weights; it needs termcolor).
Nothing is installed. For BoT, AGW and SBS on ResNet-50 and ResNet-50-IBN (the Market1501 configs over fast-reid's
Base-bagtricks / Base-AGW / Base-SBS, written here in fast-reid's layout with ``_BASE_: ../Base-....yml``):
fast-reid's config and ``Baseline`` (``build_model``) with random weights and norm statistics, its state dict saved as
fast-reid's Checkpointer saves it (``{"model": ..., "iteration": ...}`` with the 751-class ``heads.weight``), loaded
through ``load_zoo_model("fastreid:CONFIG.yml", ...)``; then the settings both read from the config are compared,
and the eval-mode features on a random batch at the config's test size: ``fastreid:NAME`` is the max abs difference
on the same normalised batch (fast-reid's backbone and head against ours), ``fastreid:NAME:own_normalisation`` the
difference when fast-reid normalises the 0-255 batch itself, as its ``Baseline`` does, while ours gets it
normalised on 0-1 pixels as the crop transform does (the two inputs differ by float32 rounding, about 5e-7, which a
random 50-layer network amplifies). The norm statistics are measured on random images first, so the features keep
a sensible scale. Five more configs (``configs/Other``: ResNet-18/34/101, SE, an embedding conv, no BNNeck, the other
poolings) are checked the same way.

\\b
Example:
  python benchmarks/zoo_parity.py --torchreid-src /tmp/torchreid-0.2.5 --json
  python benchmarks/zoo_parity.py --fastreid-src /tmp/fastreid_src/fastreid-1.4.0 --json
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib
import importlib.util
import json
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import click
import torch

ARCHS = ("osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "osnet_ibn_x1_0", "osnet_ain_x1_0",
         "osnet_ain_x0_75", "osnet_ain_x0_5", "osnet_ain_x0_25", "resnet50", "resnet50_fc512")


def _module(src: Path, name: str):  # noqa: ANN202 - a module object
    path = src / "torchreid" / "reid" / "models" / f"{name}.py"
    if not path.is_file():
        path = src / "torchreid" / "models" / f"{name}.py"
    if not path.is_file():
        raise click.ClickException(f"{src}: no torchreid/reid/models/{name}.py (give the unpacked torchreid source)")
    spec = importlib.util.spec_from_file_location(f"torchreid_src_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def randomise_(model: torch.nn.Module, seed: int) -> None:
    """Random weights and BatchNorm/InstanceNorm statistics, so that every parameter and buffer matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith(".weight") and t.ndim == 1
                                                                        else 0.0))


def torchreid_parity(src: Path) -> dict[str, float]:
    """Max abs feature difference per torchreid architecture (module docstring)."""
    from opreid_bench.modeling.zoo import load_zoo_model

    mods = {n: _module(src, n) for n in ("osnet", "osnet_ain", "resnet")}
    out: dict[str, float] = {}
    x = torch.randn(4, 3, 256, 128, generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            family = "osnet_ain" if arch.startswith("osnet_ain") else "osnet" if arch.startswith("osnet") else "resnet"
            ref = getattr(mods[family], arch)(
                num_classes=751, pretrained=False, loss="softmax")
            randomise_(ref, seed=len(arch))
            ref.eval()
            ckpt = Path(tmp) / f"{arch}.pth.tar"
            torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}, "epoch": 60}, ckpt)
            ours, _ = load_zoo_model(f"torchreid:{arch}", ckpt)
            with torch.no_grad():
                out[arch] = float((ours(x) - ref(x)).abs().max())
            click.echo(f"{arch}: max abs feature difference {out[arch]:.3g}", err=True)
    return out


# --- fast-reid -------------------------------------------------------------------------------------------------

# fast-reid's Base-bagtricks / Base-AGW / Base-SBS (configs/ of the fast-reid repository), their model and input
# settings; the training sections are kept short
FASTREID_BASES = {
    "Base-bagtricks.yml": """\
MODEL:
  META_ARCHITECTURE: Baseline
  BACKBONE:
    NAME: build_resnet_backbone
    NORM: BN
    DEPTH: 50x
    LAST_STRIDE: 1
    FEAT_DIM: 2048
    WITH_IBN: False
    PRETRAIN: True
  HEADS:
    NAME: EmbeddingHead
    NORM: BN
    WITH_BNNECK: True
    POOL_LAYER: GlobalAvgPool
    NECK_FEAT: before
    CLS_LAYER: Linear
  LOSSES:
    NAME: ("CrossEntropyLoss", "TripletLoss",)
    CE:
      EPSILON: 0.1
      SCALE: 1.
    TRI:
      MARGIN: 0.3
      HARD_MINING: True
      NORM_FEAT: False
      SCALE: 1.
INPUT:
  SIZE_TRAIN: [ 256, 128 ]
  SIZE_TEST: [ 256, 128 ]
  REA:
    ENABLED: True
    PROB: 0.5
  FLIP:
    ENABLED: True
  PADDING:
    ENABLED: True
DATALOADER:
  SAMPLER_TRAIN: NaiveIdentitySampler
  NUM_INSTANCE: 4
  NUM_WORKERS: 8
SOLVER:
  AMP:
    ENABLED: True
  OPT: Adam
  MAX_EPOCH: 120
  BASE_LR: 0.00035
  IMS_PER_BATCH: 64
  STEPS: [ 40, 90 ]
TEST:
  EVAL_PERIOD: 30
  IMS_PER_BATCH: 128
CUDNN_BENCHMARK: True
""",
    "Base-AGW.yml": """\
_BASE_: Base-bagtricks.yml
MODEL:
  BACKBONE:
    WITH_NL: True
  HEADS:
    POOL_LAYER: GeneralizedMeanPooling
  LOSSES:
    NAME: ("CrossEntropyLoss", "TripletLoss")
    TRI:
      MARGIN: 0.0
      HARD_MINING: False
      SCALE: 1.0
""",
    "Base-SBS.yml": """\
_BASE_: Base-bagtricks.yml
MODEL:
  FREEZE_LAYERS: [ backbone ]
  BACKBONE:
    WITH_NL: True
  HEADS:
    NECK_FEAT: after
    POOL_LAYER: GeneralizedMeanPoolingP
    CLS_LAYER: CircleSoftmax
    SCALE: 64
    MARGIN: 0.35
INPUT:
  SIZE_TRAIN: [ 384, 128 ]
  SIZE_TEST: [ 384, 128 ]
  AUTOAUG:
    ENABLED: True
    PROB: 0.1
DATALOADER:
  NUM_INSTANCE: 16
SOLVER:
  SCHED: CosineAnnealingLR
  DELAY_EPOCHS: 30
  FREEZE_ITERS: 1000
TEST:
  EVAL_PERIOD: 10
""",
}
FASTREID_CONFIGS = {f"{name}{suffix}": (base, suffix.endswith("ibn"))
                    for name, base in (("bagtricks", "Base-bagtricks.yml"), ("AGW", "Base-AGW.yml"),
                                       ("sbs", "Base-SBS.yml"))
                    for suffix in ("_R50", "_R50-ibn")}


# beyond the six: the other depths, SE, an embedding conv, no BNNeck and the other poolings (children of
# Base-bagtricks, under configs/Other/)
FASTREID_OTHER = {
    "R18-se-nl_GlobalMaxPool_emb256": "  BACKBONE:\n    DEPTH: 18x\n    FEAT_DIM: 512\n    WITH_SE: True\n"
                                      "    WITH_NL: True\n  HEADS:\n    POOL_LAYER: GlobalMaxPool\n"
                                      "    EMBEDDING_DIM: 256\n",
    "R34_AdaptiveAvgMaxPool_noneck": "  BACKBONE:\n    DEPTH: 34x\n    FEAT_DIM: 512\n  HEADS:\n"
                                     "    POOL_LAYER: AdaptiveAvgMaxPool\n    WITH_BNNECK: False\n",
    "R101-ibn-nl_FastGlobalAvgPool_stride2": "  BACKBONE:\n    DEPTH: 101x\n    WITH_IBN: True\n    WITH_NL: True\n"
                                             "    LAST_STRIDE: 2\n  HEADS:\n    POOL_LAYER: FastGlobalAvgPool\n",
    "R50-se_ClipGlobalAvgPool_emb128_noneck": "  BACKBONE:\n    WITH_SE: True\n  HEADS:\n"
                                              "    POOL_LAYER: ClipGlobalAvgPool\n    EMBEDDING_DIM: 128\n"
                                              "    WITH_BNNECK: False\n",
    "R50_Identity": "  HEADS:\n    POOL_LAYER: Identity\n",
}


def write_fastreid_configs(folder: Path) -> dict[str, Path]:
    """configs/Base-*.yml, configs/Market1501/<name>.yml (``_BASE_: ../Base-....yml``) and configs/Other/<name>.yml
    (:data:`FASTREID_OTHER`) under ``folder``."""
    root = folder / "configs"
    (root / "Market1501").mkdir(parents=True, exist_ok=True)
    for name, text in FASTREID_BASES.items():
        (root / name).write_text(text)
    out = {}
    for name, (base, ibn) in FASTREID_CONFIGS.items():
        ibn_text = "MODEL:\n  BACKBONE:\n    WITH_IBN: True\n" if ibn else ""
        out[name] = root / "Market1501" / f"{name}.yml"
        out[name].write_text(f'_BASE_: "../{base}"\n{ibn_text}DATASETS:\n  NAMES: ("Market1501",)\n'
                             f'  TESTS: ("Market1501",)\nOUTPUT_DIR: "logs/market1501/{name}"\n')
    (root / "Other").mkdir(exist_ok=True)
    for name, model in FASTREID_OTHER.items():
        out[name] = root / "Other" / f"{name}.yml"
        out[name].write_text(f"_BASE_: ../Base-bagtricks.yml\nMODEL:\n{model}")
    return out


class _YacsCfgNode(dict):
    """Stand-in for ``yacs.config.CfgNode``: a dict with attribute access; ``merge_from_other_cfg`` as yacs's
    ``_merge_a_into_b`` (strings through ``literal_eval``, the default's type kept, list/tuple cast, unknown keys
    refused)."""

    def __init__(self, init_dict: dict | None = None, key_list: list | None = None, new_allowed: bool = False) -> None:
        super().__init__()
        for key, value in (init_dict or {}).items():
            self[key] = type(self)(value) if isinstance(value, dict) else value

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def clone(self) -> _YacsCfgNode:
        return copy.deepcopy(self)

    def merge_from_other_cfg(self, other: dict) -> None:
        _yacs_merge(other, self, [])


def _yacs_merge(a: dict, b: dict, keys: list[str]) -> None:
    for key, value in a.items():
        full = ".".join([*keys, key])
        value = copy.deepcopy(value)
        if isinstance(value, dict) and not isinstance(value, _YacsCfgNode):
            value = type(b)(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(value)
        if key not in b:
            raise KeyError(f"Non-existent config key: {full}")
        old = b[key]
        if type(value) is not type(old) and value is not None and old is not None:
            if isinstance(value, (list, tuple)) and isinstance(old, (list, tuple)):
                value = type(old)(value)
            else:
                raise ValueError(f"type mismatch at {full}: {type(value).__name__} for {type(old).__name__}")
        if isinstance(value, dict):
            _yacs_merge(value, old, [*keys, key])
        else:
            b[key] = value


def fastreid_modules(src: Path) -> dict[str, Any]:
    """fast-reid's ``get_cfg`` and ``build_model`` from the source folder ``src`` (module docstring)."""
    pkg = src / "fastreid"
    if not (pkg / "modeling" / "backbones" / "resnet.py").is_file():
        raise click.ClickException(f"{src}: no fastreid/modeling/backbones/resnet.py (give the unpacked fast-reid "
                                   "source, e.g. fastreid-1.4.0)")
    if any(name == "fastreid" or name.startswith("fastreid.") for name in sys.modules):
        raise click.ClickException("a fastreid package is already imported in this process")
    yacs, yacs_config = types.ModuleType("yacs"), types.ModuleType("yacs.config")
    yacs_config.CfgNode = _YacsCfgNode  # type: ignore[attr-defined]
    yacs.config = yacs_config  # type: ignore[attr-defined]
    sys.modules.setdefault("yacs", yacs)
    sys.modules.setdefault("yacs.config", yacs_config)
    sys.path.insert(0, str(src))
    # packages whose __init__ imports every backbone / head / meta-architecture / loss: folders only
    for name in ("modeling", "modeling.backbones", "modeling.heads", "modeling.meta_arch", "modeling.losses"):
        module = types.ModuleType(f"fastreid.{name}")
        module.__path__ = [str(pkg.joinpath(*name.split(".")))]  # type: ignore[attr-defined]
        sys.modules[f"fastreid.{name}"] = module
    # the checkpoint helpers (termcolor, fvcore-style I/O) serve only the backbone's pretrained-weight log lines
    checkpoint = types.ModuleType("fastreid.utils.checkpoint")
    checkpoint.get_missing_parameters_message = checkpoint.get_unexpected_parameters_message = str  # type: ignore
    sys.modules["fastreid.utils.checkpoint"] = checkpoint
    backbones, heads = sys.modules["fastreid.modeling.backbones"], sys.modules["fastreid.modeling.heads"]
    backbones.build_backbone = importlib.import_module("fastreid.modeling.backbones.build").build_backbone
    importlib.import_module("fastreid.modeling.backbones.resnet")  # registers build_resnet_backbone
    heads_build = importlib.import_module("fastreid.modeling.heads.build")
    heads.build_heads, heads.REID_HEADS_REGISTRY = heads_build.build_heads, heads_build.REID_HEADS_REGISTRY
    importlib.import_module("fastreid.modeling.heads.embedding_head")  # registers EmbeddingHead
    meta_build = importlib.import_module("fastreid.modeling.meta_arch.build")
    importlib.import_module("fastreid.modeling.meta_arch.baseline")  # registers Baseline
    config = importlib.import_module("fastreid.config")
    return {"get_cfg": config.get_cfg, "build_model": meta_build.build_model}


def randomise_fastreid_(model: torch.nn.Module, images: torch.Tensor, seed: int) -> None:
    """Random norm weights and biases, GeM ``p`` and conv biases, then BatchNorm running statistics measured on
    ``images`` (normalised) in training mode, so that the signal keeps its scale through 50 layers and the
    non-local attention neither vanishes nor overflows; the convolutions keep fast-reid's own random init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.dtype.is_floating_point or t.ndim != 1 or name.endswith(("running_mean", "running_var")):
                continue
            if name.endswith(".p"):
                t.copy_(3.0 + torch.rand(t.shape, generator=g))
            elif name.endswith("weight"):
                t.copy_(1.0 + 0.2 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
        model.train()
        for chunk in images.split(4):  # backbone and neck only: the training-mode head wants labels
            model.heads.bottleneck(model.heads.pool_layer(model.backbone(chunk)))
        model.eval()


def fastreid_parity(src: Path, batch: int = 4) -> dict[str, float]:
    """Max abs feature difference per fast-reid config (module docstring); the config settings must agree."""
    from opreid_bench.modeling.zoo import load_zoo_model
    from opreid_bench.modeling.zoo.fastreid_config import read_fastreid_config

    fr = fastreid_modules(src)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in write_fastreid_configs(Path(tmp)).items():
            cfg = fr["get_cfg"]()
            cfg.merge_from_file(str(path))
            cfg.MODEL.DEVICE, cfg.MODEL.BACKBONE.PRETRAIN, cfg.MODEL.HEADS.NUM_CLASSES = "cpu", False, 751
            ours_cfg = read_fastreid_config(path)
            b, h = cfg.MODEL.BACKBONE, cfg.MODEL.HEADS
            theirs = (b.DEPTH, b.LAST_STRIDE, b.FEAT_DIM, b.WITH_IBN, b.WITH_SE, b.WITH_NL, h.POOL_LAYER,
                      h.EMBEDDING_DIM, h.WITH_BNNECK, h.NECK_FEAT, tuple(cfg.INPUT.SIZE_TEST),
                      tuple(cfg.MODEL.PIXEL_MEAN), tuple(cfg.MODEL.PIXEL_STD), cfg.TEST.METRIC)
            mine = (ours_cfg.depth, ours_cfg.last_stride, ours_cfg.feat_dim, ours_cfg.with_ibn, ours_cfg.with_se,
                    ours_cfg.with_nl, ours_cfg.pool_layer, ours_cfg.embedding_dim, ours_cfg.with_bnneck,
                    ours_cfg.neck_feat, ours_cfg.size_test, ours_cfg.pixel_mean, ours_cfg.pixel_std, ours_cfg.metric)
            if theirs != mine:
                raise click.ClickException(f"{name}: the configs disagree: fast-reid {theirs}, ours {mine}")
            torch.manual_seed(len(name))
            ref = fr["build_model"](cfg)
            prep = ours_cfg.preprocessing()
            mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
            std = torch.tensor(prep.std).view(1, 3, 1, 1)
            calib = torch.rand(8, 3, prep.height, prep.width, generator=torch.Generator().manual_seed(2))
            randomise_fastreid_(ref, (calib - mean) / std, seed=len(name))
            ckpt = Path(tmp) / f"{name}.pth"
            torch.save({"model": ref.state_dict(), "iteration": 12345}, ckpt)
            ours, prep = load_zoo_model(f"fastreid:{path}", ckpt)
            x255 = torch.rand(batch, 3, prep.height, prep.width, generator=torch.Generator().manual_seed(1)) * 255
            x = (x255 / 255.0 - mean) / std  # what the crop transform gives ours
            with torch.no_grad():
                got = ours(x)
                same = ref.heads(ref.backbone(x.clone()))  # fast-reid's modules on the same normalised batch
                want = ref(x255.clone())  # fast-reid end to end: it normalises the 0-255 batch in place, itself
            out[f"fastreid:{name}"] = diff = float((got - same).abs().max())
            out[f"fastreid:{name}:own_normalisation"] = diff_own = float((got - want).abs().max())
            rounding = float((x - (x255 - ref.pixel_mean) / ref.pixel_std).abs().max())
            click.echo(f"fastreid {name} ({ours_cfg.describe()}, {prep.height}x{prep.width}): max abs feature "
                       f"difference {diff:.3g} on the same normalised batch; {diff_own:.3g} with fast-reid "
                       f"normalising 0-255 pixels itself (inputs differ by {rounding:.2g}, float32 rounding); "
                       f"features: mean |f| {float(want.abs().mean()):.3g}, spread across images "
                       f"{float(want.std(0).mean()):.3g}", err=True)
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--torchreid-src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--fastreid-src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def main(torchreid_src: Path | None, fastreid_src: Path | None, as_json: bool) -> None:
    """Max abs feature difference, ours vs the toolkits' own model code, per architecture / config."""
    if torchreid_src is None and fastreid_src is None:
        raise click.UsageError("give --torchreid-src DIR and/or --fastreid-src DIR")
    out: dict[str, float] = {}
    if torchreid_src is not None:
        out.update(torchreid_parity(torchreid_src))
    if fastreid_src is not None:
        out.update(fastreid_parity(fastreid_src))
    if as_json:
        print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
