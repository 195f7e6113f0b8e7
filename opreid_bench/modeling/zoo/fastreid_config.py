"""fast-reid YAML configs read without fast-reid: ``_BASE_`` inheritance, then what shapes the eval-mode feature.

Inheritance is fast-reid's ``CfgNode.load_yaml_with_base`` (the fvcore / detectron2 scheme), step for step: a file's
``_BASE_`` names another config, relative to the folder of the file that names it unless it starts with ``/``
(``~`` is expanded; URLs are refused, nothing is downloaded); the base is resolved first, so bases nest; then the
file's mappings are merged into the base key by key, recursively, the file's values winning; a mapping may not
replace a base's plain value (fast-reid: "Cannot inherit key"). As yacs then merges the result into fast-reid's
defaults, a string value that parses as a Python literal becomes that literal (``"(1, 2)"`` is a tuple, ``"50x"``
stays a string) and a value must have its default's type (a list and a tuple stand in for each other).

What is read (fast-reid's default when a key is absent) and what is supported:

=============================  =====================================================================================
``MODEL.META_ARCHITECTURE``    ``Baseline``
``MODEL.BACKBONE``             ``NAME: build_resnet_backbone``; ``DEPTH`` 18x / 34x / 50x / 101x; ``LAST_STRIDE``;
                               ``FEAT_DIM`` (the depth's output width); ``NORM`` BN (syncBN and GhostBN are BN in
                               eval mode); ``WITH_IBN``, ``WITH_SE``, ``WITH_NL``
``MODEL.HEADS``                ``NAME: EmbeddingHead``; ``POOL_LAYER`` (:data:`POOL_LAYERS`); ``EMBEDDING_DIM``;
                               ``WITH_BNNECK``; ``NORM`` (as the backbone's); ``NECK_FEAT`` before / after and
                               ``CLS_LAYER`` (checked, but neither changes the eval-mode feature)
``MODEL.PIXEL_MEAN`` / ``_STD`` per-channel normalisation on 0-255 pixels
``INPUT.SIZE_TEST``            [height, width] (bicubic resize, as fast-reid's test transform); ``INPUT.CROP.ENABLED``
                               must be false (a test-time centre crop is not supported)
``TEST.METRIC``                cosine / euclidean: the distance fast-reid evaluates with
=============================  =====================================================================================

Keys that do not change the eval-mode feature are ignored, and are listed (:data:`IGNORED`): the training sections
(``SOLVER``, ``DATALOADER``, ``DATASETS``, ``KD``, ``OUTPUT_DIR``, ``CUDNN_BENCHMARK``), ``MODEL.LOSSES``, the
classifier's ``NUM_CLASSES`` / ``SCALE`` / ``MARGIN``, pretraining and device keys, the training augmentations under
``INPUT`` and the evaluation switches under ``TEST`` (fast-reid's flip test, query expansion and re-ranking are not
applied). Any other key, and any value outside what is supported, is an :class:`~opreid_bench.errors.OpreidError`
of one line naming the config file, the key and the value (and the base file that set it).
"""

from __future__ import annotations

import ast
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opreid_bench.errors import OpreidError
from opreid_bench.modeling.zoo import ZooPreprocessing

BASE_KEY = "_BASE_"
DEPTHS = {"18x": 512, "34x": 512, "50x": 2048, "101x": 2048}  # depth -> backbone output width (FEAT_DIM)
BN_NORMS = ("BN", "syncBN", "GhostBN")  # identical in eval mode: running statistics, the same state-dict keys
POOL_LAYERS = ("GlobalAvgPool", "FastGlobalAvgPool", "GlobalMaxPool", "GeneralizedMeanPooling",
               "GeneralizedMeanPoolingP", "AdaptiveAvgMaxPool", "ClipGlobalAvgPool", "Identity")
CLS_LAYERS = ("Linear", "ArcSoftmax", "CosSoftmax", "CircleSoftmax")
METRICS = ("cosine", "euclidean")

# the keys read, per section, with fast-reid 1.x's defaults (fastreid/config/defaults.py)
READ: dict[str, dict[str, Any]] = {
    "MODEL": {"META_ARCHITECTURE": "Baseline", "PIXEL_MEAN": [0.485 * 255, 0.456 * 255, 0.406 * 255],
              "PIXEL_STD": [0.229 * 255, 0.224 * 255, 0.225 * 255]},
    "MODEL.BACKBONE": {"NAME": "build_resnet_backbone", "DEPTH": "50x", "LAST_STRIDE": 1, "FEAT_DIM": 2048,
                       "NORM": "BN", "WITH_IBN": False, "WITH_SE": False, "WITH_NL": False},
    "MODEL.HEADS": {"NAME": "EmbeddingHead", "NORM": "BN", "EMBEDDING_DIM": 0, "WITH_BNNECK": False,
                    "NECK_FEAT": "before", "POOL_LAYER": "GlobalAvgPool", "CLS_LAYER": "Linear"},
    "INPUT": {"SIZE_TEST": [256, 128]},
    "INPUT.CROP": {"ENABLED": False},
    "TEST": {"METRIC": "cosine"},
}
SECTIONS = {"": ("MODEL", "INPUT", "TEST"), "MODEL": ("BACKBONE", "HEADS"), "INPUT": ("CROP",)}
# keys (or whole sections) that do not change the eval-mode feature
IGNORED: dict[str, tuple[str, ...]] = {
    "": ("SOLVER", "DATALOADER", "DATASETS", "KD", "OUTPUT_DIR", "CUDNN_BENCHMARK"),
    "MODEL": ("DEVICE", "WEIGHTS", "FREEZE_LAYERS", "LOSSES", "QUEUE_SIZE"),
    "MODEL.BACKBONE": ("PRETRAIN", "PRETRAIN_PATH", "SIE_COE", "STRIDE_SIZE", "DROP_PATH_RATIO", "DROP_RATIO",
                       "ATT_DROP_RATE"),
    "MODEL.HEADS": ("NUM_CLASSES", "SCALE", "MARGIN"),
    "INPUT": ("SIZE_TRAIN", "FLIP", "PADDING", "CJ", "AFFINE", "AUTOAUG", "AUGMIX", "REA", "RPT"),
    "INPUT.CROP": ("SIZE", "SCALE", "RATIO"),
    "TEST": ("EVAL_PERIOD", "IMS_PER_BATCH", "ROC", "FLIP", "AQE", "RERANK", "PRECISE_BN"),
}


@dataclass(frozen=True)
class FastreidConfig:
    """The settings of a fast-reid ``Baseline`` (ResNet backbone + ``EmbeddingHead``) that its eval-mode feature and
    test input depend on; defaults are fast-reid's."""

    path: Path
    depth: str = "50x"
    last_stride: int = 1
    feat_dim: int = 2048
    backbone_norm: str = "BN"
    with_ibn: bool = False
    with_se: bool = False
    with_nl: bool = False
    pool_layer: str = "GlobalAvgPool"
    embedding_dim: int = 0
    with_bnneck: bool = False
    head_norm: str = "BN"
    neck_feat: str = "before"
    size_test: tuple[int, int] = (256, 128)
    pixel_mean: tuple[float, float, float] = (0.485 * 255, 0.456 * 255, 0.406 * 255)
    pixel_std: tuple[float, float, float] = (0.229 * 255, 0.224 * 255, 0.225 * 255)
    metric: str = "cosine"

    @property
    def feature_dim(self) -> int:
        """Width of the eval-mode feature: the embedding's when there is one, else the backbone's."""
        return self.embedding_dim if self.embedding_dim > 0 else self.feat_dim

    def preprocessing(self) -> ZooPreprocessing:
        """fast-reid's test input as a :class:`ZooPreprocessing`: SIZE_TEST, bicubic (``T.Resize(size,
        interpolation=3)``), RGB, PIXEL_MEAN / PIXEL_STD moved from 0-255 to 0-1 pixels, TEST.METRIC."""
        mean = tuple(m / 255.0 for m in self.pixel_mean)
        std = tuple(s / 255.0 for s in self.pixel_std)
        return ZooPreprocessing(height=self.size_test[0], width=self.size_test[1], mean=mean,  # type: ignore[arg-type]
                                std=std, interpolation="bicubic", metric=self.metric)  # type: ignore[arg-type]

    def describe(self) -> str:
        """One line naming the architecture, e.g. ``ResNet-50-IBN + non-local, GeneralizedMeanPoolingP, BNNeck``."""
        parts = [f"ResNet-{self.depth[:-1]}" + ("-IBN" if self.with_ibn else "") + ("-SE" if self.with_se else "")
                 + (" + non-local" if self.with_nl else ""), self.pool_layer]
        if self.embedding_dim:
            parts.append(f"embedding {self.embedding_dim}")
        if self.with_bnneck:
            parts.append("BNNeck")
        return ", ".join(parts)


@dataclass(frozen=True)
class _Set:
    """A config value with the file that set it (so that an error can name that file)."""

    value: Any
    file: Path


def _annotate(node: Any, file: Path, where: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise OpreidError(f"{file}: key {key!r}{f' under {where}' if where else ''} is not a string "
                                  "(fast-reid config keys are names such as MODEL)")
            out[key] = _annotate(value, file, f"{where}.{key}" if where else key)
        return out
    return _Set(node, file)


def _read_yaml(path: Path, named_by: Path | None) -> dict[str, Any]:
    by = f" (the {BASE_KEY} of {named_by})" if named_by is not None else ""
    if not path.is_file():
        raise OpreidError(f"{path}: fast-reid config not found{by}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise OpreidError(f"{path}: cannot read the fast-reid config{by} ({type(exc).__name__}: {exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise OpreidError(f"{path}: not valid YAML{at}{by} ({problem})") from None
    if not isinstance(raw, dict):
        raise OpreidError(f"{path}: a fast-reid config is a YAML mapping of keys such as MODEL, got "
                          f"{type(raw).__name__}{by}")
    return raw


def load_yaml_with_base(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The config at ``path`` with its ``_BASE_`` chain merged in (module docstring); every leaf is a ``_Set``
    holding the value and the file that set it."""
    path = Path(path)
    raw = _read_yaml(path, _chain[-1] if _chain else None)
    has_base = BASE_KEY in raw
    base_name = raw.pop(BASE_KEY, None)
    cfg = _annotate(raw, path, "")
    if not has_base:
        return cfg
    if not isinstance(base_name, str) or not base_name:
        raise OpreidError(f"{path}: {BASE_KEY} = {base_name!r} is not the path of a base config")
    if base_name.startswith(("https://", "http://")):
        raise OpreidError(f"{path}: {BASE_KEY} = {base_name!r} is a URL; nothing is downloaded, give a local file")
    if base_name.startswith("~"):
        base_name = os.path.expanduser(base_name)
    # like fast-reid: relative to the naming file's folder, unless absolute
    base_path = Path(base_name if base_name.startswith("/") else os.path.join(os.path.dirname(str(path)), base_name))
    seen = [p.resolve() for p in (*_chain, path)]
    if base_path.resolve() in seen:
        raise OpreidError(f"{path}: {BASE_KEY} = {base_name!r} makes a cycle ({' -> '.join(map(str, (*_chain, path)))}"
                          f" -> {base_path})")
    base = load_yaml_with_base(base_path, (*_chain, path))
    _merge_into(cfg, base, path, "")
    return base


def _merge_into(child: dict[str, Any], base: dict[str, Any], file: Path, where: str) -> None:
    """fast-reid's ``merge_a_into_b``: the child's values overwrite the base's, mappings merge recursively."""
    for key, value in child.items():
        name = f"{where}.{key}" if where else key
        if isinstance(value, dict) and key in base:
            if not isinstance(base[key], dict):
                raise OpreidError(f"{file}: {name} is a mapping but its base sets a value there "
                                  f"({base[key].value!r} in {base[key].file}); fast-reid: cannot inherit key "
                                  f"'{key}' from base")
            _merge_into(value, base[key], file, name)
        else:
            base[key] = value


def plain(node: Any) -> Any:
    """The merged config as plain Python values (the files that set them dropped)."""
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    return node.value


def decode(value: Any) -> Any:
    """yacs's ``_decode_cfg_value`` for a leaf: a string that parses as a Python literal becomes that literal."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


class _Reader:
    """Typed access to the merged config, with errors that name the config, the key, the value and its file."""

    def __init__(self, cfg: dict[str, Any], path: Path) -> None:
        self.cfg = cfg
        self.path = path

    def fail(self, key: str, leaf: _Set | None, why: str) -> OpreidError:
        if leaf is None:
            return OpreidError(f"{self.path}: {key} {why}")
        origin = "" if leaf.file == self.path else f" (set in {leaf.file})"
        return OpreidError(f"{self.path}: {key} = {leaf.value!r}{origin} {why}")

    def section(self, name: str) -> dict[str, Any]:
        """The mapping at dotted ``name`` ({} when absent); its unknown keys are refused by name."""
        node: Any = self.cfg
        for part in [p for p in name.split(".") if p]:
            node = node.get(part, {})
            if isinstance(node, _Set):
                raise self.fail(name, node, "is a value where fast-reid has a section of keys")
        known = set(READ.get(name, {})) | set(SECTIONS.get(name, ())) | set(IGNORED.get(name, ()))
        for key, value in node.items():
            if key not in known:
                full = f"{name}.{key}" if name else key
                leaf = value if isinstance(value, _Set) else None
                raise self.fail(full, leaf, "is not a fast-reid 1.x Baseline key this reader knows")
        return node

    def get(self, section: str, key: str) -> tuple[Any, _Set | None]:
        """(value, leaf) of ``section.key``, decoded and type-checked against fast-reid's default, like yacs."""
        default = READ[section][key]
        node = self.section(section).get(key)
        full = f"{section}.{key}"
        if node is None:
            return default, None
        if isinstance(node, dict):
            raise self.fail(full, None, "is a section of keys; fast-reid expects a value here")
        value = decode(node.value)
        if value is None:
            raise self.fail(full, node, "is empty; give a value or leave the key out")
        if not (type(value) is type(default) or (isinstance(value, (list, tuple)) and isinstance(default, list))):
            raise self.fail(full, node, f"is of type {type(value).__name__}; fast-reid's default is of type "
                            f"{type(default).__name__} ({default!r})")
        return value, node

    def choice(self, section: str, key: str, allowed: tuple[str, ...] | dict[str, Any],
               label: str = "supported") -> Any:
        value, leaf = self.get(section, key)
        if value not in allowed:
            raise self.fail(f"{section}.{key}", leaf, f"is not supported ({label}: {', '.join(allowed)})")
        return value

    def flag(self, section: str, key: str) -> bool:
        return bool(self.get(section, key)[0])

    def integer(self, section: str, key: str, minimum: int) -> int:
        value, leaf = self.get(section, key)
        if value < minimum:
            raise self.fail(f"{section}.{key}", leaf, f"must be >= {minimum}")
        return int(value)

    def triple(self, section: str, key: str, positive: bool) -> tuple[float, float, float]:
        value, leaf = self.get(section, key)
        ok = len(value) in (1, 3) and all(type(v) in (int, float) and math.isfinite(v) for v in value)
        if not ok or (positive and min(value) <= 0):
            raise self.fail(f"{section}.{key}", leaf, "must be 3 finite numbers (or 1, used for every channel), "
                            "per RGB channel on 0-255 pixels" + (", all > 0" if positive else ""))
        values = [float(v) for v in value] * (3 if len(value) == 1 else 1)
        return values[0], values[1], values[2]


def read_fastreid_config(path: str | Path) -> FastreidConfig:
    """Read the fast-reid config at ``path`` (``_BASE_`` chain included) into a :class:`FastreidConfig`; anything
    unsupported is a one-line :class:`OpreidError` (module docstring)."""
    path = Path(path)
    r = _Reader(load_yaml_with_base(path), path)
    r.section("")
    r.choice("MODEL", "META_ARCHITECTURE", ("Baseline",))
    r.choice("MODEL.BACKBONE", "NAME", ("build_resnet_backbone",))
    depth = r.choice("MODEL.BACKBONE", "DEPTH", DEPTHS)
    feat_dim, leaf = r.get("MODEL.BACKBONE", "FEAT_DIM")
    if feat_dim != DEPTHS[depth]:
        raise r.fail("MODEL.BACKBONE.FEAT_DIM", leaf if leaf is not None else _Set(feat_dim, path),
                     f"is not the output width of a {depth} ResNet ({DEPTHS[depth]})")
    backbone_norm = r.choice("MODEL.BACKBONE", "NORM", BN_NORMS)
    r.choice("MODEL.HEADS", "NAME", ("EmbeddingHead",))
    pool_layer = r.choice("MODEL.HEADS", "POOL_LAYER", POOL_LAYERS, "supported, fast-reid 1.x class names")
    r.choice("MODEL.HEADS", "CLS_LAYER", CLS_LAYERS)
    size, leaf = r.get("INPUT", "SIZE_TEST")
    if len(size) != 2 or not all(type(v) is int and v > 0 for v in size):
        raise r.fail("INPUT.SIZE_TEST", leaf, "must be [height, width], two positive integers (a single size keeps "
                     "the aspect ratio in fast-reid, which gives crops of different sizes)")
    if r.flag("INPUT.CROP", "ENABLED"):
        raise r.fail("INPUT.CROP.ENABLED", r.get("INPUT.CROP", "ENABLED")[1],
                     "is not supported (fast-reid's test transform would centre-crop INPUT.CROP.SIZE)")
    return FastreidConfig(
        path=path, depth=depth, last_stride=r.integer("MODEL.BACKBONE", "LAST_STRIDE", 1), feat_dim=int(feat_dim),
        backbone_norm=backbone_norm, with_ibn=r.flag("MODEL.BACKBONE", "WITH_IBN"),
        with_se=r.flag("MODEL.BACKBONE", "WITH_SE"), with_nl=r.flag("MODEL.BACKBONE", "WITH_NL"),
        pool_layer=pool_layer, embedding_dim=r.integer("MODEL.HEADS", "EMBEDDING_DIM", 0),
        with_bnneck=r.flag("MODEL.HEADS", "WITH_BNNECK"), head_norm=r.choice("MODEL.HEADS", "NORM", BN_NORMS),
        neck_feat=r.choice("MODEL.HEADS", "NECK_FEAT", ("before", "after")), size_test=(size[0], size[1]),
        pixel_mean=r.triple("MODEL", "PIXEL_MEAN", positive=False), pixel_std=r.triple("MODEL", "PIXEL_STD", True),
        metric=r.choice("TEST", "METRIC", METRICS))


__all__ = ["FastreidConfig", "IGNORED", "POOL_LAYERS", "READ", "decode", "load_yaml_with_base", "plain",
           "read_fastreid_config"]
