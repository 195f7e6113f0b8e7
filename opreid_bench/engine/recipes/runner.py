"""Recipe runner: resolve a recipe into a plan, train and evaluate its runs, and record the metrics in run.json.

Running a recipe trains every (method, dataset) into ``OUT/<method>__<dataset>/`` (a finished run is skipped, a
partial one resumed), evaluates it on each protocol with the protocol's junk rule, and adds the metrics to the run's
``run.json`` under ``results[<protocol>]`` (for every standard protocol the name is the dataset's name), which is
what ``opreid-bench leaderboard --runs OUT`` reads.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opreid_bench.engine.config import (
    BASELINES_DIR,
    SAME_RUN_KEYS,
    MethodConfig,
    config_differences,
    load_method_config,
    with_defaults,
)
from opreid_bench.engine.recipes.schema import Recipe, expand, method_path, variable_lookup
from opreid_bench.errors import ConfigError, OpreidError, OutputError

# config keys a finished run may differ in from the recipe's config and still count as the same run
_SAME_RUN_IGNORES = (*SAME_RUN_KEYS, "model.pretrained")


# ------------------------------------------------------------------------------------------------------- plan


def _norm(path: str) -> str:
    """``~`` expanded and ``a/../b`` folded, so plans and run.json show clean paths."""
    return os.path.normpath(os.path.expanduser(path))


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
    status: str  # new | partial | done | stopped (a time-capped run, resumed by the next run)

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
    from opreid_bench.outputs import foreign_entries, read_marker

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
        method_source = method_path(spec.method, recipe.source)
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
            diffs = config_differences(with_defaults(info.get("config") or {}), cfg.to_dict(),
                                       ignore=_SAME_RUN_IGNORES, labels=("in the run", "in the recipe"))
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
    planned = {run.run_dir.name for run in runs}
    inputs = {os.path.realpath(recipe.source)} if recipe.source else set()
    foreign = foreign_entries(out, lambda p: p.name in planned or (p.is_dir() and read_marker(p) is not None)
                              or os.path.realpath(p) in inputs)
    if foreign:  # the runs of a recipe go into a folder of their own: never among the user's files
        raise OutputError(f"--out {out} holds {len(foreign):,} entr{'y' if len(foreign) == 1 else 'ies'} that no "
                          f"`opreid-bench` run wrote (e.g. {foreign[0]}); choose another --out")
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
