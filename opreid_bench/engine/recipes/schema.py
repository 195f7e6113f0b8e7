"""Recipe schema: the dataclasses, reading and validating ``baselines/recipes/*.yaml``, and ``${VAR}`` expansion.

A recipe is one reproduction -- a table of the paper at full scale on a GPU, or the CPU-scale run of
``benchmarks/reproduce_cpu.py`` -- written as data and run by ``opreid-bench reproduce --recipe NAME``::

    name: paper_table4
    description: one line for `reproduce --list`
    hardware: what it needs and how long it takes
    device: cuda                         # default of --device
    variables: {REID_DATA: null}         # ${NAME} defaults; null = the user must give it (--var, env, --root)
    data: {market1501: ${REID_DATA}}     # dataset name -> root (${VAR} and ~ expanded; --root NAME=PATH wins)
    pretrained: {resnet50: ${RESNET50_WEIGHTS}}   # backbone -> local torchvision checkpoint (--pretrained)
    train: {methods: [bot, ours], datasets: [market1501]}   # or a list of {method, dataset} / {methods, datasets}
    evaluate: {market1501: [market1501]} # training dataset -> evaluation protocols (protocols/evaluation/)
    overrides: ["data.workers=8"]        # --set strings applied to every method
    time_limit_minutes: null             # per-run cap (a capped run resumes on the next call)
    published: {tables: [Table 4], methods: {bot: ASB, ours: Ours}}   # the paper's rows to compare with
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opreid_bench.engine.config import BASELINES_DIR, load_method_config, read_yaml, resolve_config_path
from opreid_bench.errors import ConfigError, OpreidError
from opreid_bench.resources import checkout_root

RECIPES_DIR = Path(os.environ.get("OPREID_RECIPES_DIR", BASELINES_DIR / "recipes"))
REPO_DIR = checkout_root() or Path.cwd()  # ${REPO} in a recipe: the checkout, or the working directory of a wheel
TOP_KEYS = ("name", "description", "hardware", "device", "variables", "data", "pretrained", "train", "evaluate",
            "overrides", "time_limit_minutes", "published")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class RunSpec:
    """One training run of a recipe: a method (name in ``baselines/`` or a YAML path) on a training dataset."""

    method: str
    dataset: str


@dataclass
class PublishedSpec:
    """The paper's rows to put next to the measured ones: which tables, and our method name -> the paper's row."""

    tables: tuple[str, ...] = ()
    methods: dict[str, str] = field(default_factory=dict)


@dataclass
class Recipe:
    """A validated recipe (see the module docstring for the YAML); strings keep their ``${VAR}`` until planned."""

    name: str
    description: str
    source: Path
    hardware: str = ""
    device: str = "cpu"
    variables: dict[str, str | None] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    pretrained: dict[str, str] = field(default_factory=dict)
    train: list[RunSpec] = field(default_factory=list)
    evaluate: dict[str, list[str]] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    time_limit_minutes: float | None = None
    published: PublishedSpec = field(default_factory=PublishedSpec)

    def protocols_for(self, dataset: str) -> list[str]:
        """Evaluation protocols of a training dataset (default: the dataset's own protocol)."""
        if dataset in self.evaluate:
            return list(self.evaluate[dataset])
        from opreid_bench.data.datasets import DATASETS

        own = getattr(DATASETS.get(dataset), "protocol", None)
        return [own] if own else []

    def datasets(self) -> list[str]:
        """Every dataset the recipe reads: training datasets, then the evaluation protocols' datasets."""
        from opreid_bench.data.protocols import load_protocol

        out = [r.dataset for r in self.train]
        for ds in dict.fromkeys(out):
            out += [load_protocol(p).dataset for p in self.protocols_for(ds)]
        return list(dict.fromkeys(out))

    def result_keys(self) -> list[str]:
        """The ``results`` keys (protocol names) the recipe's runs report: the leaderboard's datasets."""
        keys = [p for ds in dict.fromkeys(r.dataset for r in self.train) for p in self.protocols_for(ds)]
        return list(dict.fromkeys(keys))


def _err(source: Path, key: str, what: str) -> ConfigError:
    return ConfigError(f"{source}: '{key}' {what}")


def _str_map(raw: Any, source: Path, key: str, *, allow_null: bool = False) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _err(source, key, f"must be a mapping, got {raw!r}")
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if v is None and allow_null:
            out[str(k)] = None
        elif isinstance(v, (str, int, float)) and not isinstance(v, bool):
            out[str(k)] = str(v)
        else:
            raise _err(source, f"{key}.{k}", f"must be a string{' or null' if allow_null else ''}, got {v!r}")
    return out


def _str_list(raw: Any, source: Path, key: str) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise _err(source, key, f"must be a list of names, got {raw!r}")
    return list(raw)


def _parse_train(raw: Any, source: Path) -> list[RunSpec]:
    """``train:`` as {methods, datasets} (all pairs), {method, dataset}, or a list of either."""
    items = raw if isinstance(raw, list) else [raw]
    runs: list[RunSpec] = []
    for i, item in enumerate(items):
        key = f"train[{i}]" if isinstance(raw, list) else "train"
        if not isinstance(item, dict):
            raise _err(source, key, f"must be {{method, dataset}} or {{methods, datasets}}, got {item!r}")
        unknown = sorted(set(item) - {"method", "dataset", "methods", "datasets"})
        if unknown:
            raise _err(source, f"{key}.{unknown[0]}", "is not a key (use method/dataset or methods/datasets)")
        methods = _str_list(item["method"] if "method" in item else item.get("methods"), source, f"{key}.methods")
        datasets = _str_list(item["dataset"] if "dataset" in item else item.get("datasets"), source,
                             f"{key}.datasets")
        runs += [RunSpec(m, d) for m, d in itertools.product(methods, datasets)]
    if not runs:
        raise _err(source, "train", "lists no run")
    return runs


def _parse_published(raw: Any, source: Path) -> PublishedSpec:
    if raw is None:
        return PublishedSpec()
    if not isinstance(raw, dict):
        raise _err(source, "published", f"must be a mapping {{tables, methods}}, got {raw!r}")
    unknown = sorted(set(raw) - {"tables", "methods"})
    if unknown:
        raise _err(source, f"published.{unknown[0]}", "is not a key (known: tables, methods)")
    tables = _str_list(raw.get("tables") or [], source, "published.tables")
    return PublishedSpec(tables=tuple(tables), methods=_str_map(raw.get("methods"), source, "published.methods"))


def resolve_recipe_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A recipe name (``cpu_cuhk03`` -> ``baselines/recipes/cpu_cuhk03.yaml``) or a path to a YAML file."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in text or "/" in text:
        if not path.is_file():
            raise ConfigError(f"{path}: recipe file not found")
        return path
    candidate = RECIPES_DIR / f"{text}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"{candidate}: unknown recipe '{text}' (known: {', '.join(list_recipes()) or 'none'})")
    return candidate


def list_recipes() -> list[str]:
    """Names of the recipes in ``baselines/recipes/``, sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []


def method_path(method: str, source: Path) -> Path:
    """A recipe's method: a YAML file beside the recipe, else a name in ``baselines/`` or a config path."""
    beside = source.parent / method
    return beside if method.endswith((".yaml", ".yml")) and beside.is_file() else resolve_config_path(method)


def load_recipe(name_or_path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe; every fault is a :class:`ConfigError` naming the file and the key."""
    from opreid_bench.data.datasets import DATASETS
    from opreid_bench.data.protocols import load_protocol

    source = resolve_recipe_path(name_or_path)
    raw = read_yaml(source, "recipe")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe must be a mapping at the top level")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise _err(source, unknown[0], f"is not a recipe key (known: {', '.join(TOP_KEYS)})")
    for key in ("name", "description", "train"):
        if not raw.get(key):
            raise _err(source, key, "is missing")
    for key in ("name", "description", "hardware", "device"):
        if key in raw and not isinstance(raw[key], str):
            raise _err(source, key, f"must be a string, got {raw[key]!r}")
    device = raw.get("device", "cpu")
    if device not in ("cpu", "cuda"):
        raise _err(source, "device", f"must be cpu or cuda, got {device!r}")
    runs = _parse_train(raw["train"], source)
    for i, run in enumerate(runs):
        if run.dataset not in DATASETS:
            raise _err(source, "train", f"names dataset '{run.dataset}' (run {i + 1}); known: "
                                        f"{', '.join(DATASETS.names())}")
        try:
            method_path(run.method, source)
        except ConfigError as exc:
            raise _err(source, "train", f"names method '{run.method}' ({exc})") from None
    if len(set(runs)) != len(runs):
        dup = next(r for r in runs if runs.count(r) > 1)
        raise _err(source, "train", f"lists {dup.method} on {dup.dataset} twice")
    evaluate = raw.get("evaluate") or {}
    if not isinstance(evaluate, dict):
        raise _err(source, "evaluate", "must map a training dataset to a list of protocol names")
    evaluate = {str(ds): _str_list(v, source, f"evaluate.{ds}") for ds, v in evaluate.items()}
    trained = {r.dataset for r in runs}
    for ds, protocols in evaluate.items():
        if ds not in trained:
            raise _err(source, f"evaluate.{ds}", f"is not a training dataset of this recipe "
                                                  f"({', '.join(sorted(trained))})")
        for p in protocols:
            try:
                load_protocol(p)
            except OpreidError as exc:
                raise _err(source, f"evaluate.{ds}", f"names protocol '{p}' ({exc})") from None
    overrides = _str_list(raw.get("overrides") or [], source, "overrides")
    limit = raw.get("time_limit_minutes")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0):
        raise _err(source, "time_limit_minutes", f"must be a positive number of minutes or null, got {limit!r}")
    recipe = Recipe(
        name=raw["name"], description=" ".join(raw["description"].split()), source=source,
        hardware=" ".join(str(raw.get("hardware", "")).split()), device=device,
        variables=_str_map(raw.get("variables"), source, "variables", allow_null=True),
        data=_str_map(raw.get("data"), source, "data"), pretrained=_str_map(raw.get("pretrained"), source,
                                                                             "pretrained"),
        train=runs, evaluate=evaluate, overrides=overrides,
        time_limit_minutes=float(limit) if limit is not None else None,
        published=_parse_published(raw.get("published"), source),
    )
    for ds in recipe.data:
        if ds not in DATASETS:
            raise _err(source, f"data.{ds}", f"is not a dataset; known: {', '.join(DATASETS.names())}")
    if not any("${" in o for o in overrides):  # check the overrides against every method now, not after hours
        for method in dict.fromkeys(r.method for r in runs):
            try:
                load_method_config(method_path(method, source), overrides)
            except ConfigError as exc:
                raise _err(source, "overrides", f"do not fit method '{method}': {exc}") from None
    return recipe


# -------------------------------------------------------------------------------------------------- expansion


def expand(text: str, lookup: dict[str, str | None]) -> tuple[str | None, list[str]]:
    """``${NAME}`` from ``lookup`` (values may hold further ``${...}``) and a leading ``~``.

    Returns (expanded text, []) or (None, [names that have no value]).
    """
    missing: list[str] = []

    def sub(match: re.Match[str], depth: int) -> str:
        name = match.group(1)
        value = lookup.get(name)
        if value is None or depth > 8:
            missing.append(name)
            return ""
        return _VAR.sub(lambda m: sub(m, depth + 1), value)

    out = _VAR.sub(lambda m: sub(m, 0), text)
    if missing:
        return None, list(dict.fromkeys(missing))
    return os.path.expanduser(out), []


def variable_lookup(recipe: Recipe, cli_vars: dict[str, str] | None = None) -> dict[str, str | None]:
    """Values of ``${NAME}``: ``--var`` first, then the environment, then the recipe's defaults, then built-ins."""
    lookup: dict[str, str | None] = {"REPO": str(REPO_DIR), "RECIPE_DIR": str(recipe.source.parent.resolve())}
    for name, default in recipe.variables.items():
        lookup[name] = default
    for name in _VAR.findall(json.dumps([recipe.data, recipe.pretrained, recipe.overrides, recipe.variables])):
        if name in os.environ:
            lookup[name] = os.environ[name]
    lookup.update(cli_vars or {})
    return lookup
