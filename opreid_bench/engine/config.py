"""Typed method configs (``baselines/<method>.yaml``): load, inherit, override with ``--set``, validate.

A method config is a :class:`MethodConfig` of five typed sections (``model``, ``data``, ``loss``, ``optim``,
``eval``) plus ``method`` and ``seed``. YAML files may ``inherit:`` another file (path relative to the file, or a
method name) and then override any key; unknown keys and wrong types are a :class:`ConfigError` naming the file and
the dotted key, so a typo never silently falls back to a default. ``--set model.dnl=false`` overrides are YAML-parsed
(``false`` is a bool, ``[40, 70]`` a list) and validated the same way.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opreid_bench.errors import ConfigError
from opreid_bench.modeling.config import BACKBONE_NAMES, ModelConfig
from opreid_bench.resources import resource_dir

BASELINES_DIR = Path(os.environ.get("OPREID_BASELINES_DIR") or resource_dir("baselines"))

FEATURE_BRANCHES = ("global", "rp")


@dataclass
class DataConfig:
    """Input size, identity-balanced batches (P identities × K images) and the augmentations."""

    height: int = 256
    width: int = 128
    batch_p: int = 16  # identities per batch (paper: batch 64 = 16 × 4)
    batch_k: int = 4  # images per identity
    padding: int = 10
    flip_p: float = 0.5
    random_erasing: bool = True  # per-image random erasing in the transform (bot, baseline)
    re_prob: float = 0.5
    re_area: tuple[float, float] = (0.02, 0.4)
    re_aspect: float = 0.3
    cbe: bool = False  # compound batch erasing (Sec. 3.2): the batch becomes [X_re; X_bce] (2B images)
    cbe_stripes: tuple[int, ...] = (6, 7, 8)
    # progressive resizing (fast.ai's DAWNBench recipe; FixRes, Touvron et al. 2019, on why the last epochs must be
    # at the test size): the first low_res_epochs train on each batch average-pooled by low_res_factor (at factor 2
    # such an epoch cost 0.35-0.55 of a full-size one in the demo: the network's share shrinks, loading does not);
    # the remaining epochs and all inference use the full size
    low_res_epochs: int = 0
    low_res_factor: int = 2
    workers: int = 0  # DataLoader worker processes (0 = load in the main process)
    # keep up to this many MiB of decoded training images in memory so that later epochs skip the decoding (per
    # loading process: with workers > 0 each worker fills its own copy); the images are the same either way
    decoded_cache_mb: int = 0
    test_batch_size: int = 128


@dataclass
class LossConfig:
    """Which losses, with which hyper-parameters, on which pooled features.

    ``ce_on`` / ``metric_on`` name the feature branches: ``global`` (global pooling) and ``rp`` (reconstructive
    pooling; used only when the model has RP). The identity loss reads the classifier logits of a branch; the metric
    losses (triplet, BED) read the pooled feature before the BNNeck, as in BoT and fast-reid.
    """

    ce: bool = True
    ce_weight: float = 1.0
    label_smoothing: float = 0.1
    triplet: bool = True
    triplet_weight: float = 1.0
    triplet_margin: float = 0.3
    bed: bool = False
    bed_weight: float = 1.0
    bed_alpha: float = 0.3
    bed_mining: str = "all"  # "all" | "hard"
    bed_normalize: bool = False  # BED on L2-normalised features (d in [0, 2]) instead of raw pooled features
    ce_on: tuple[str, ...] = ("global", "rp")
    metric_on: tuple[str, ...] = ("global", "rp")


@dataclass
class OptimConfig:
    """Adam with linear warm-up and step decay (BoT / fast-reid); AMP on CUDA."""

    optimizer: str = "adam"  # "adam" | "sgd"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9  # SGD only
    warmup_epochs: int = 10
    warmup_factor: float = 0.1  # lr starts at lr × warmup_factor (BoT: 3.5e-5 → 3.5e-4)
    milestones: tuple[int, ...] = (40, 70)
    gamma: float = 0.1
    epochs: int = 120
    max_iters_per_epoch: int | None = None  # cap on iterations per epoch (CPU budgets); None = one pass
    amp: bool = True  # mixed precision; used only on CUDA
    # NHWC images and weights: oneDNN's convolutions run ~1.25x faster on a CPU for the compact backbone; the results
    # differ from NCHW only in float rounding
    channels_last: bool = False
    grad_clip: float | None = None


@dataclass
class EvalConfig:
    """Periodic evaluation during training (on the training dataset's query/gallery with its protocol)."""

    period: int = 0  # evaluate every N epochs (0 = only after the last epoch)
    metric: str = "euclidean"  # "euclidean" | "cosine"
    at_end: bool = True


@dataclass
class MethodConfig:
    """A whole method: what ``opreid-bench train --method NAME`` trains and what a checkpoint stores."""

    method: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (tuples as lists) that :func:`config_from_dict` reads back: what checkpoints store."""
        return _plain(dataclasses.asdict(self))


# ----------------------------------------------------------------------------------------------------- parsing


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (bool/int/float/str, Optional, tuple, list); return it typed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" (no dot) as a string: accept numeric text
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {_type_name(tp)}")


def _build(cls: type, raw: Any, where: str, source: str) -> Any:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclass fields."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{where or 'top level'}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"{source}: unknown key '{key}' (known in '{where or 'top level'}': {', '.join(fields)})")
    kwargs = {}
    for name, value in raw.items():
        key = f"{where}.{name}" if where else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key, source)
        else:
            kwargs[name] = _coerce(value, tp, f"{source}: '{key}'")
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a section's own validation (ModelConfig) does not know the file
        raise ConfigError(f"{source}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: invalid '{where or 'top level'}' ({exc})") from exc


def _deep_merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A method name (``ours`` -> ``baselines/ours.yaml``) or a path to a YAML file."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or os.sep in text or path.exists():
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        return path
    candidate = BASELINES_DIR / f"{text}.yaml"
    if not candidate.exists():
        known = sorted(p.stem for p in BASELINES_DIR.glob("*.yaml"))
        raise ConfigError(f"{candidate}: unknown method '{text}' (known: {', '.join(known)})")
    return candidate


def read_yaml(path: Path, what: str) -> Any:
    """Parse a YAML file; an unreadable file or bad YAML is a one-line ConfigError naming the file."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from exc


def _read_yaml_tree(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """Read ``path`` and everything it inherits (deep-merged, child wins)."""
    path = path.resolve()
    if path in chain:
        raise ConfigError(f"{path}: circular 'inherit' ({' -> '.join(p.name for p in (*chain, path))})")
    raw = read_yaml(path, "config")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level")
    parent = raw.pop("inherit", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'inherit' must be a file name or method name, got {parent!r}")
    parent_path = path.parent / parent if (path.parent / parent).exists() else None
    if parent_path is None:
        parent_path = resolve_config_path(parent)
    return _deep_merge(_read_yaml_tree(parent_path, (*chain, path)), raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``model.dnl=false`` -> (['model', 'dnl'], False); the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text}: expected KEY=VALUE with a dotted key, e.g. model.dnl=false")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text}: value is not valid YAML ({str(exc).splitlines()[0]})") from exc
    return key.split("."), parsed


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``--set a.b=v`` overrides to a raw (dict) config; unknown keys are caught by validation."""
    out = copy.deepcopy(raw)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def config_from_dict(raw: dict, source: str = "config") -> MethodConfig:
    """Typed, validated :class:`MethodConfig` from a raw dict (a YAML tree, or what a checkpoint stored)."""
    cfg = _build(MethodConfig, raw, "", source)
    validate_config(cfg, source)
    return cfg


def _check_choice(value: str, choices: tuple[str, ...], key: str, source: str) -> None:
    if value not in choices:
        raise ConfigError(f"{source}: '{key}' must be one of {', '.join(choices)}, got {value!r}")


def validate_config(cfg: MethodConfig, source: str = "config") -> None:
    """Cross-field and range checks the types cannot express; raises :class:`ConfigError`."""
    m, d, lo, o, e = cfg.model, cfg.data, cfg.loss, cfg.optim, cfg.eval
    _check_choice(m.backbone, BACKBONE_NAMES, "model.backbone", source)
    _check_choice(m.pooling, ("avg", "gem"), "model.pooling", source)
    _check_choice(m.classifier, ("linear", "multihead_cosine"), "model.classifier", source)
    _check_choice(m.me_mode, ("subtract", "tde"), "model.me_mode", source)
    _check_choice(lo.bed_mining, ("all", "hard"), "loss.bed_mining", source)
    _check_choice(o.optimizer, ("adam", "sgd"), "optim.optimizer", source)
    _check_choice(e.metric, ("euclidean", "cosine"), "eval.metric", source)
    for key, value in (("data.height", d.height), ("data.width", d.width), ("data.batch_p", d.batch_p),
                       ("data.batch_k", d.batch_k), ("data.test_batch_size", d.test_batch_size),
                       ("optim.epochs", o.epochs)):
        if value < 1:
            raise ConfigError(f"{source}: '{key}' must be >= 1, got {value}")
    if d.batch_p < 2:
        raise ConfigError(f"{source}: 'data.batch_p' must be >= 2 (metric losses need negatives), got {d.batch_p}")
    if cfg.seed < 0:
        raise ConfigError(f"{source}: 'seed' must be >= 0, got {cfg.seed}")
    for key, value in (("data.flip_p", d.flip_p), ("data.re_prob", d.re_prob), ("loss.label_smoothing",
                                                                                lo.label_smoothing)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{source}: '{key}' is a probability and must lie in [0, 1], got {value}")
    for key, value in (("loss.ce_weight", lo.ce_weight), ("loss.triplet_weight", lo.triplet_weight),
                       ("loss.bed_weight", lo.bed_weight), ("loss.triplet_margin", lo.triplet_margin),
                       ("loss.bed_alpha", lo.bed_alpha), ("optim.momentum", o.momentum)):
        if value < 0:
            raise ConfigError(f"{source}: '{key}' must be >= 0, got {value}")
    if d.workers < 0 or d.padding < 0 or d.decoded_cache_mb < 0 or o.warmup_epochs < 0 or e.period < 0:
        raise ConfigError(f"{source}: data.workers, data.padding, data.decoded_cache_mb, optim.warmup_epochs, "
                          "eval.period must be >= 0")
    if d.low_res_epochs < 0 or d.low_res_epochs >= o.epochs:
        raise ConfigError(f"{source}: 'data.low_res_epochs' must lie in [0, optim.epochs) so that the last epochs "
                          f"train at the test size, got {d.low_res_epochs} with {o.epochs} epochs")
    if d.low_res_factor < 2 or d.height % d.low_res_factor or d.width % d.low_res_factor:
        raise ConfigError(f"{source}: 'data.low_res_factor' must be >= 2 and divide data.height and data.width, got "
                          f"{d.low_res_factor} for {d.height}x{d.width}")
    if not 0.0 < d.re_area[0] <= d.re_area[1] <= 1.0:
        raise ConfigError(f"{source}: 'data.re_area' must satisfy 0 < lo <= hi <= 1, got {list(d.re_area)}")
    if not 0.0 < d.re_aspect <= 1.0:
        raise ConfigError(f"{source}: 'data.re_aspect' must lie in (0, 1], got {d.re_aspect}")
    if not d.cbe_stripes or any(s < 1 for s in d.cbe_stripes):
        raise ConfigError(f"{source}: 'data.cbe_stripes' must be positive stripe counts, got {list(d.cbe_stripes)}")
    if d.cbe and d.random_erasing:
        raise ConfigError(f"{source}: 'data.cbe' already random-erases its first half; set data.random_erasing=false")
    if not (lo.ce or lo.triplet or lo.bed):
        raise ConfigError(f"{source}: no loss enabled (loss.ce, loss.triplet, loss.bed are all false)")
    for key, branches in (("loss.ce_on", lo.ce_on), ("loss.metric_on", lo.metric_on)):
        bad = [b for b in branches if b not in FEATURE_BRANCHES]
        if bad:
            raise ConfigError(f"{source}: '{key}' entries must be in {', '.join(FEATURE_BRANCHES)}, got {bad[0]!r}")
        if "global" not in branches:
            raise ConfigError(f"{source}: '{key}' must include 'global' (the feature used at inference)")
    if o.lr <= 0 or o.weight_decay < 0 or not 0 < o.warmup_factor <= 1 or not 0 < o.gamma <= 1:
        raise ConfigError(f"{source}: optim.lr > 0, weight_decay >= 0, 0 < warmup_factor <= 1, 0 < gamma <= 1")
    if list(o.milestones) != sorted(o.milestones):
        raise ConfigError(f"{source}: 'optim.milestones' must be increasing, got {list(o.milestones)}")
    if o.max_iters_per_epoch is not None and o.max_iters_per_epoch < 1:
        raise ConfigError(f"{source}: 'optim.max_iters_per_epoch' must be >= 1 or null")
    if not 0.0 <= m.me_beta < 1.0:
        raise ConfigError(f"{source}: 'model.me_beta' must lie in [0, 1), got {m.me_beta}")


def load_method_config(
    name_or_path: str | os.PathLike[str],
    overrides: list[str] | tuple[str, ...] = (),
) -> MethodConfig:
    """Load ``baselines/<name>.yaml`` (or a YAML path), resolve ``inherit:``, apply ``--set`` overrides, validate.

    Example: ``cfg = load_method_config("ours", ["model.dnl=false", "optim.epochs=2"])``.
    """
    path = resolve_config_path(name_or_path)
    raw = _read_yaml_tree(path)
    raw.setdefault("method", path.stem)
    if overrides:
        raw = apply_overrides(raw, overrides)
        source = f"{path} (with --set {' '.join(overrides)})"
    else:
        source = str(path)
    return config_from_dict(raw, source)


def config_digest(cfg: MethodConfig) -> str:
    """A short, stable text of the config (for logs and run.json)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=True, default_flow_style=None)


#: config keys that cannot change what a run learns, or that a longer run extends: a resumed or finished run may
#: differ from the current config in these and still be the same run (loading and evaluation settings, epochs)
SAME_RUN_KEYS = ("optim.epochs", "eval", "data.workers", "data.test_batch_size", "data.decoded_cache_mb")


def with_defaults(raw: dict) -> dict:
    """A stored config dict with the keys added since it was written at their defaults (what that run trained with);
    ``raw`` itself when it no longer parses. So a run from an older version is not mistaken for another config."""
    try:
        return config_from_dict(copy.deepcopy(raw)).to_dict()
    except ConfigError:
        return raw


def config_differences(a: dict, b: dict, *, ignore: tuple[str, ...] = (), labels: tuple[str, str] = ("a", "b"),
                       prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (keys under ``ignore`` skipped), as readable lines.

    Used to refuse a resume with another config and to spot a finished run that a recipe would train differently.
    """
    diffs = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}{key}"
        if any(path == m or path.startswith(m + ".") for m in ignore):
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs.extend(config_differences(va, vb, ignore=ignore, labels=labels, prefix=path + "."))
        elif va != vb:
            diffs.append(f"{path}: {va!r} {labels[0]}, {vb!r} {labels[1]}")
    return diffs
