"""Reproduction recipes (``baselines/recipes/*.yaml``): which methods to train on which datasets, evaluated how.

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

Running a recipe trains every (method, dataset) into ``OUT/<method>__<dataset>/`` (a finished run is skipped, a
partial one resumed), evaluates it on each protocol with the protocol's junk rule, and adds the metrics to the run's
``run.json`` under ``results[<protocol>]`` (for every standard protocol the name is the dataset's name), which is
what ``opreid-bench leaderboard --runs OUT`` reads.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opreid_bench.engine.config import BASELINES_DIR, MethodConfig, load_method_config, resolve_config_path
from opreid_bench.errors import ConfigError, OpreidError

RECIPES_DIR = Path(os.environ.get("OPREID_RECIPES_DIR", BASELINES_DIR / "recipes"))
REPO_DIR = Path(__file__).resolve().parents[2]
TOP_KEYS = ("name", "description", "hardware", "device", "variables", "data", "pretrained", "train", "evaluate",
            "overrides", "time_limit_minutes", "published")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# config keys a finished run may differ in from the recipe's config and still count as the same run
_SAME_RUN_IGNORES = ("optim.epochs", "eval", "data.workers", "data.test_batch_size", "model.pretrained")


# ------------------------------------------------------------------------------------------------------ schema


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


def _method_path(method: str, source: Path) -> Path:
    beside = source.parent / method
    return beside if method.endswith((".yaml", ".yml")) and beside.is_file() else resolve_config_path(method)


def load_recipe(name_or_path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe; every fault is a :class:`ConfigError` naming the file and the key."""
    from opreid_bench.data.datasets import DATASETS
    from opreid_bench.data.protocols import load_protocol

    source = resolve_recipe_path(name_or_path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read recipe ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML ({str(exc).splitlines()[0]})") from exc
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
            _method_path(run.method, source)
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
    overrides = raw.get("overrides") or []
    overrides = _str_list(overrides, source, "overrides") if overrides else []
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
                load_method_config(_method_path(method, source), overrides)
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


def _norm(path: str) -> str:
    """``~`` expanded and ``a/../b`` folded, so plans and run.json show clean paths."""
    return os.path.normpath(os.path.expanduser(path))


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


# ------------------------------------------------------------------------------------------------------- plan


@dataclass
class PlannedRun:
    """One run of a plan: where it goes, its config, its state on disk, its evaluation protocols."""

    method: str
    dataset: str
    run_dir: Path
    method_source: Path
    overrides: list[str]
    config: MethodConfig
    protocols: list[str]
    status: str  # new | partial | done | stopped (a time-capped run, resumed next time)

    def train_command(self, root: str, device: str, time_limit: float | None = None) -> str:
        """The equivalent ``opreid-bench train`` command line."""
        named = self.method_source.parent.resolve() == BASELINES_DIR.resolve()
        which = ["--method", self.method_source.stem] if named else ["--config", str(self.method_source)]
        cmd = ["opreid-bench", "train", *which, "--dataset", self.dataset, "--root", root, "--out",
               str(self.run_dir), "--device", device]
        for o in self.overrides:
            cmd += ["--set", o]
        if self.status in ("partial", "stopped"):
            cmd.append("--resume")
        if time_limit is not None:
            cmd += ["--time-limit", f"{time_limit:g}"]
        return shlex.join(cmd)


@dataclass
class Plan:
    """A recipe resolved against the user's paths: runs, dataset roots, and every problem that stops it."""

    recipe: Recipe
    out: Path
    device: str
    roots: dict[str, str | None]
    runs: list[PlannedRun]
    problems: list[str]

    def evaluate_commands(self, run: PlannedRun) -> list[str]:
        """The equivalent ``opreid-bench evaluate`` command lines of a run's protocols."""
        from opreid_bench.data.datasets import DATASETS
        from opreid_bench.data.protocols import load_protocol

        out = []
        for name in run.protocols:
            p = load_protocol(name)
            cmd = ["opreid-bench", "evaluate", "--method", run.config.method, "--weights",
                   str(run.run_dir / "model.pt"), "--dataset", p.dataset, "--root",
                   self.roots.get(p.dataset) or f"<{p.dataset} root>", "--junk", p.junk, "--json"]
            defaults = getattr(DATASETS.get(p.dataset), "option_defaults", {})
            extra = {k: v for k, v in p.options.items() if defaults.get(k) != v}
            out.append(shlex.join(cmd) + (f"  # needs loader options {extra}" if extra else ""))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (``reproduce --dry-run --json``)."""
        runs = []
        for r in self.runs:
            root = self.roots.get(r.dataset) or f"<{r.dataset} root>"
            runs.append({"method": r.config.method, "dataset": r.dataset, "run_dir": str(r.run_dir),
                         "status": r.status, "evaluate": r.protocols,
                         "commands": [r.train_command(root, self.device, self.recipe.time_limit_minutes),
                                      *self.evaluate_commands(r)]})
        return {"recipe": self.recipe.name, "source": str(self.recipe.source), "out": str(self.out),
                "device": self.device, "roots": self.roots, "runs": runs, "problems": self.problems}


def _parse_pairs(pairs: list[str] | tuple[str, ...], flag: str) -> tuple[dict[str, str], str | None]:
    """``NAME=VALUE`` pairs -> dict; a bare value (no ``=``) is returned separately (``--root PATH``: all)."""
    named: dict[str, str] = {}
    bare: str | None = None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            bare = pair
        elif not key.strip() or not value:
            raise OpreidError(f"{flag} {pair!r}: expected NAME=VALUE")
        else:
            named[key.strip()] = value
    return named, bare


def _run_status(run_dir: Path, cfg: MethodConfig) -> str:
    info = _read_run_json(run_dir)
    if info is not None and (run_dir / "model.pt").is_file():
        if not info.get("stopped_early") and int(info.get("epochs", 0)) >= cfg.optim.epochs:
            return "done"
        return "stopped" if (run_dir / "checkpoints" / "last.pt").is_file() else "partial"
    return "partial" if (run_dir / "checkpoints" / "last.pt").is_file() else "new"


def _read_run_json(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise OpreidError(f"{path}: unreadable run file ({exc}); remove it to retrain this run") from exc


def _config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}{key}"
        if any(path == m or path.startswith(m + ".") for m in _SAME_RUN_IGNORES):
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs.extend(_config_differences(va, vb, path + "."))
        elif va != vb:
            diffs.append(f"{path}: {va!r} in the run, {vb!r} in the recipe")
    return diffs


def _check_root(dataset: str, root: str, options: dict[str, str]) -> str | None:
    """None when the loader finds the dataset's folders under ``root``; else the loader's message."""
    from opreid_bench.data.datasets import DATASETS

    try:
        DATASETS.get(dataset)(root, **options).dataset_dir()
    except OpreidError as exc:
        return str(exc)
    return None


def plan_recipe(
    recipe: Recipe,
    out: str | os.PathLike[str],
    *,
    roots: list[str] | tuple[str, ...] = (),
    pretrained: list[str] | tuple[str, ...] = (),
    variables: list[str] | tuple[str, ...] = (),
    sets: list[str] | tuple[str, ...] = (),
    device: str | None = None,
) -> Plan:
    """Resolve roots, weights and configs; report what is missing as ``plan.problems`` (nothing is trained).

    ``roots``: ``NAME=PATH`` (one dataset) or ``PATH`` (every dataset); ``pretrained``: ``BACKBONE=PATH``;
    ``variables``: ``NAME=VALUE`` for ``${NAME}``; ``sets``: ``--set`` overrides applied after the recipe's.
    """
    from opreid_bench.data.protocols import load_protocol

    out = Path(out).expanduser()
    cli_vars, bare_var = _parse_pairs(variables, "--var")
    if bare_var is not None:
        raise OpreidError(f"--var {bare_var!r}: expected NAME=VALUE, e.g. REID_DATA=~/data")
    lookup = variable_lookup(recipe, cli_vars)
    root_args, root_all = _parse_pairs(roots, "--root")
    weight_args, bare_weights = _parse_pairs(pretrained, "--pretrained")
    if bare_weights is not None:
        raise OpreidError(f"--pretrained {bare_weights!r}: expected BACKBONE=PATH, e.g. resnet50=~/w/resnet50.pth")
    datasets = recipe.datasets()
    for name in root_args:
        if name not in datasets:
            raise OpreidError(f"--root {name}=...: recipe {recipe.name} reads no dataset '{name}' "
                              f"(it reads {', '.join(datasets)})")
    problems: list[str] = []

    def resolve(text: str, what: str, hint: str) -> str | None:
        value, missing = expand(text, lookup)
        if missing:
            problems.append(f"{what}: not set ({', '.join('${' + m + '}' for m in missing)}); {hint}")
        return value

    recipe_sets: list[str] = []
    for text in recipe.overrides:
        value = resolve(text, f"override {text!r}", "pass --var NAME=VALUE")
        if value is not None:
            recipe_sets.append(value)
    root_of: dict[str, str | None] = {}
    unset: dict[str, str] = {}  # dataset -> why it has no root (reported only if a run needs the dataset)
    for ds in datasets:
        hint = f"pass --root {ds}=PATH (or --root PATH for every dataset)"
        if ds in root_args:
            root_of[ds] = _norm(root_args[ds])
        elif root_all is not None:
            root_of[ds] = _norm(root_all)
        elif ds in recipe.data:
            value, missing = expand(recipe.data[ds], lookup)
            root_of[ds] = _norm(value) if value is not None else None
            if missing:
                unset[ds] = f"dataset root '{ds}': not set ({', '.join('${' + m + '}' for m in missing)}); {hint}"
        else:
            root_of[ds] = None
            unset[ds] = f"dataset root '{ds}': not in the recipe's data; {hint}"

    runs: list[PlannedRun] = []
    needed: dict[tuple[str, str], dict[str, str]] = {}  # (dataset, protocol or 'train') -> loader options
    weights_needed: set[str] = set()
    for spec in recipe.train:
        method_source = _method_path(spec.method, recipe.source)
        base = recipe_sets + list(sets)
        cfg = load_method_config(method_source, base)
        backbone = cfg.model.backbone
        overrides = list(base)
        explicit = any(o.split("=", 1)[0].strip() == "model.pretrained" for o in base)
        run_dir = out / f"{cfg.method}__{spec.dataset}"
        status = _run_status(run_dir, cfg)
        if not explicit and (backbone in weight_args or backbone in recipe.pretrained):
            if backbone in weight_args:
                path: str | None = os.path.expanduser(weight_args[backbone])
            elif status == "done":  # a finished run needs no initial weights: do not ask for them
                path = expand(recipe.pretrained[backbone], lookup)[0]
            else:
                path = resolve(recipe.pretrained[backbone], f"pretrained {backbone} weights",
                               f"pass --pretrained {backbone}=PATH")
            if path is not None:
                overrides = [*recipe_sets, f"model.pretrained={json.dumps(_norm(path))}", *sets]
                cfg = load_method_config(method_source, overrides)
        if status == "done":
            info = _read_run_json(run_dir) or {}
            diffs = _config_differences(info.get("config") or {}, cfg.to_dict())
            if diffs:
                problems.append(f"{run_dir}/run.json: a finished run with another config ({diffs[0]}); choose "
                                f"another --out or remove the run")
        else:
            needed[(spec.dataset, "train")] = {}
            if cfg.model.pretrained:
                weights_needed.add(cfg.model.pretrained)
        protocols = recipe.protocols_for(spec.dataset)
        for name in protocols:
            p = load_protocol(name)
            if status != "done" or not _evaluated(run_dir, name):
                needed[(p.dataset, name)] = p.options
        runs.append(PlannedRun(method=cfg.method, dataset=spec.dataset, run_dir=run_dir,
                               method_source=method_source, overrides=overrides, config=cfg, protocols=protocols,
                               status=status))
    if len({r.run_dir for r in runs}) != len(runs):
        raise ConfigError(f"{recipe.source}: two runs share a run directory (methods with the same 'method' name)")
    for (ds, _what), options in needed.items():
        root = root_of.get(ds)
        if root is None:
            problems.append(unset[ds])
        else:
            fault = _check_root(ds, root, options)
            if fault and not any(fault in p for p in problems):
                problems.append(f"dataset root '{ds}': {fault}; pass --root {ds}=PATH")
    for path in sorted(weights_needed):
        if not Path(path).is_file():
            problems.append(f"{path}: pretrained backbone file not found; pass --pretrained BACKBONE=PATH")
    return Plan(recipe=recipe, out=out, device=device or recipe.device, roots=root_of, runs=runs,
                problems=list(dict.fromkeys(problems)))


def _evaluated(run_dir: Path, key: str) -> bool:
    info = _read_run_json(run_dir) or {}
    done = (info.get("evaluated") or {}).get(key) or {}
    return key in (info.get("results") or {}) and done.get("epochs") == info.get("epochs")


# -------------------------------------------------------------------------------------------------------- run


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _training_eval(run_dir: Path, epochs: int) -> dict[str, Any] | None:
    """The evaluation ``train`` ran after the run's last epoch (metrics.jsonl), if it ran one."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    lines = [json.loads(t) for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    last = lines[-1] if lines else {}
    return last.get("eval") if int(last.get("epoch", -1)) == epochs and last.get("eval") else None


def evaluate_run(run: PlannedRun, plan: Plan, cache: dict[str, Any] | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Evaluate a trained run on each of its protocols not yet recorded; rewrite its run.json (atomically).

    A protocol that is the training dataset's own, already evaluated by ``train`` after the last epoch, is taken
    from ``metrics.jsonl`` rather than computed again. ``cache`` keeps loaded query/gallery records across runs.
    """
    from opreid_bench.atomic import atomic_write_text
    from opreid_bench.data.datasets import DATASETS
    from opreid_bench.data.protocols import load_protocol
    from opreid_bench.engine.checkpoint import load_model_from_checkpoint
    from opreid_bench.engine.distributed import DistInfo, resolve_device
    from opreid_bench.engine.extract import evaluate_model

    cache = {} if cache is None else cache
    info = _read_run_json(run.run_dir)
    if info is None:
        raise OpreidError(f"{run.run_dir}/run.json: missing; the run has not finished training")
    epochs = int(info.get("epochs", 0))
    results = dict(info.get("results") or {})
    evaluated = dict(info.get("evaluated") or {})
    model = cfg = None
    for name in run.protocols:
        if name in results and (evaluated.get(name) or {}).get("epochs") == epochs:
            continue
        protocol = load_protocol(name)
        record = {"protocol": name, "dataset": protocol.dataset, "junk": protocol.junk, "epochs": epochs,
                  "root": plan.roots.get(protocol.dataset), "recipe": plan.recipe.name}
        own = getattr(DATASETS.get(run.dataset), "protocol", None)
        from_training = _training_eval(run.run_dir, epochs)
        if from_training and protocol.dataset == run.dataset and name == own and not protocol.options:
            metrics, record["source"] = from_training, "train (last epoch)"
        else:
            if model is None:
                dev = resolve_device(plan.device, DistInfo())
                model, cfg, _ = load_model_from_checkpoint(run.run_dir / "model.pt", expect_method=run.method,
                                                           device=dev)
            if name not in cache:
                splits = protocol.load_data(plan.roots[protocol.dataset] or ".")
                if not splits.query or not splits.gallery:
                    raise OpreidError(f"{plan.roots[protocol.dataset]}: protocol {name} found no query/gallery")
                cache[name] = (splits.query, splits.gallery)
            query, gallery = cache[name]
            _log(f"  evaluating on {name} ({len(query)} queries x {len(gallery)} gallery, junk={protocol.junk})")
            metrics = evaluate_model(model, query, gallery, cfg, junk=protocol.junk, device=dev,
                                     progress=progress)
            record["source"] = "reproduce"
        results[name] = metrics
        evaluated[name] = {**record, "metric": (cfg.eval.metric if cfg else run.config.eval.metric)}
        info = {**info, "results": results, "evaluated": evaluated, "recipe": plan.recipe.name}
        atomic_write_text(run.run_dir / "run.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
        _log(f"  {name}: R-1 {100 * metrics.get('rank1', float('nan')):.2f}  "
             f"mAP {100 * metrics.get('mAP', float('nan')):.2f}")
    return {k: results[k] for k in run.protocols if k in results}


def run_plan(plan: Plan, *, progress: bool = True) -> list[dict[str, Any]]:
    """Train (skip finished, resume partial), evaluate and record every run of the plan; one summary per run."""
    from opreid_bench.data.datasets import load_dataset
    from opreid_bench.engine.extract import dataset_junk
    from opreid_bench.engine.train import train

    if plan.problems:
        raise OpreidError(f"recipe {plan.recipe.name} ({plan.recipe.source}) cannot run: "
                          + "; ".join(plan.problems))
    plan.out.mkdir(parents=True, exist_ok=True)
    train_cache: dict[str, Any] = {}
    eval_cache: dict[str, Any] = {}
    summaries = []
    for i, run in enumerate(plan.runs, 1):
        head = f"[{i}/{len(plan.runs)}] {run.method} on {run.dataset} -> {run.run_dir}"
        status = _run_status(run.run_dir, run.config)
        if status == "done":
            _log(f"{head}: trained, skipped")
        else:
            _log(f"{head}: {'resuming' if status in ('partial', 'stopped') else 'training'}")
            if run.dataset not in train_cache:
                train_cache[run.dataset] = load_dataset(run.dataset, plan.roots[run.dataset] or ".")
            train(copy.deepcopy(run.config), train_cache[run.dataset], run.run_dir, device=plan.device,
                  resume=(run.run_dir / "checkpoints" / "last.pt").is_file(), junk=dataset_junk(run.dataset),
                  time_limit_minutes=plan.recipe.time_limit_minutes, progress=progress)
        results = evaluate_run(run, plan, eval_cache, progress=progress)
        info = _read_run_json(run.run_dir) or {}
        summaries.append({"method": run.method, "dataset": run.dataset, "run_dir": str(run.run_dir),
                          "status": "skipped" if status == "done" else "trained",
                          "complete": _run_status(run.run_dir, run.config) == "done",
                          "epochs": info.get("epochs"), "minutes": info.get("minutes"), "results": results})
    return summaries


# ------------------------------------------------------------------------------------------------ leaderboard


def recipe_rows(plan: Plan) -> list[Any]:
    """Leaderboard rows of the recipe: its published tables' rows and its runs' rows, on its datasets only."""
    from opreid_bench.leaderboard import load_published, load_runs
    from opreid_bench.leaderboard.render import sort_rows

    keys = set(plan.recipe.result_keys())
    rows = [r for r in load_published() if r.table in plan.recipe.published.tables and r.dataset in keys]
    run_dirs = [r.run_dir for r in plan.runs if (r.run_dir / "run.json").is_file()]
    rows += [r for r in load_runs(run_dirs) if r.dataset in keys] if run_dirs else []
    return sort_rows(rows)


def comparison(plan: Plan, rows: list[Any]) -> list[dict[str, Any]]:
    """Measured next to published: one entry per (run, evaluated dataset), with the paper's row if it has one."""
    published = {(r.method, r.dataset): r for r in rows if r.source == "published"}
    out = []
    for row in rows:
        if row.source == "published":
            continue
        paper_name = plan.recipe.published.methods.get(row.method)
        pub = published.get((paper_name, row.dataset)) if paper_name else None
        out.append({"method": row.method, "train_dataset": row.details.get("train_dataset"),
                    "dataset": row.dataset, "rank1": row.rank1, "mAP": row.mAP,
                    "published_method": paper_name if pub else None,
                    "published_rank1": pub.rank1 if pub else None, "published_mAP": pub.mAP if pub else None,
                    "table": pub.table if pub else None, "run_dir": row.source})
    return out
