"""Leaderboard rows: published numbers (baselines/published/) and measured runs (run directories)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from opreid_bench.engine.extract import result_key
from opreid_bench.errors import DataError, OpreidError
from opreid_bench.resources import resource_dir

PUBLISHED_DIR = resource_dir("baselines") / "published"

# Partial-REID read with its partial-body probes: the protocol of the published Partial-REID numbers (fast-reid's and
# PVPM's loaders read partial_body_images), the key `evaluate --option query_folder=partial --run-dir` files results
# under, and reproduce_cpu.py's `partial_reid_partial`. The loader's default reads the
# occluded probes, which is another protocol: its rows are kept apart.
PARTIAL_PROBES = result_key("partial_reid", "query_folder=partial")
DATASET_ALIASES = {"partial_reid_partial": PARTIAL_PROBES}

DATASET_TITLES = {
    "opreid": "OPReID",
    "occluded_duke": "Occluded-Duke",
    "occluded_reid": "Occluded-REID",
    "partial_reid": "Partial-REID, occluded probes",
    PARTIAL_PROBES: "Partial-REID, partial probes (the published protocol)",
    "partial_ilids": "Partial-iLIDS",
    "market1501": "Market-1501",
    "dukemtmc": "DukeMTMC-reID",
    "cuhk03_labeled": "CUHK03 (val)",
}


@dataclass
class LeaderboardRow:
    """One method on one dataset: R-1 and mAP in percent, as the paper prints them."""

    method: str
    dataset: str
    rank1: float | None
    mAP: float | None
    source: str  # "published" or the run directory
    table: str = ""  # the paper's table, for published rows
    citation: str = ""
    details: dict = field(default_factory=dict)  # backbone, input size, epochs, hardware for measured rows

    def to_json(self) -> dict:
        return {"method": self.method, "dataset": self.dataset, "rank1": self.rank1, "mAP": self.mAP,
                "metrics_unit": "percent", "source": self.source, "table": self.table, "citation": self.citation, **self.details}


def load_published(directory: str | Path = PUBLISHED_DIR) -> list[LeaderboardRow]:
    """Rows of the paper's Tables 3-5 (one row per method x dataset x table), with each method's citation."""
    directory = Path(directory)
    table_csv = directory / "paper_tables.csv"
    if not table_csv.exists():
        raise DataError(f"{table_csv}: published results not found")
    citations = yaml.safe_load((directory / "citations.yaml").read_text()) or {}
    merged: dict[tuple[str, str, str], LeaderboardRow] = {}
    with table_csv.open(newline="") as f:
        for rec in csv.DictReader(f):
            key = (rec["table"], rec["method"], rec["dataset"])
            row = merged.get(key)
            if row is None:
                cite = citations.get(rec["citation"], {}).get("text", rec["citation"])
                row = merged[key] = LeaderboardRow(method=rec["method"], dataset=rec["dataset"], rank1=None,
                                                   mAP=None, source="published", table=rec["table"], citation=cite)
            setattr(row, rec["metric"], float(rec["value"]))
    return list(merged.values()) + load_later_work(directory)


LATER_WORK_CSV = "sota_2021_2025.csv"
LATER_WORK_TABLE = "2021-2025"
_LATER_COLUMNS = ("method", "year", "venue", "citation", "backbone", "pretraining", "dataset", "protocol", "metric",
                  "value", "source")


def load_later_work(directory: str | Path = PUBLISHED_DIR) -> list[LeaderboardRow]:
    """Published results of occluded-ReID methods from 2021 to 2025 (``sota_2021_2025.csv``), one row per method,
    dataset and protocol; each number carries where it is printed (paper table or the authors' repository), the
    year, backbone and pre-training, and the protocol where it differs. A row without a source is refused."""
    directory = Path(directory)
    path = directory / LATER_WORK_CSV
    if not path.exists():
        return []
    cites_path = directory / "sota_citations.yaml"
    citations = (yaml.safe_load(cites_path.read_text()) or {}) if cites_path.exists() else {}
    merged: dict[tuple[str, str, str], LeaderboardRow] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _LATER_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, rec in enumerate(reader, start=2):
            if not (rec["source"] or "").strip():
                raise DataError(f"{path}:{line}: {rec['method']} on {rec['dataset']} has no source")
            if rec["metric"] not in ("rank1", "mAP"):
                raise DataError(f"{path}:{line}: metric must be rank1 or mAP, got {rec['metric']!r}")
            key = (rec["method"], rec["dataset"], rec["protocol"] or "")
            row = merged.get(key)
            if row is None:
                cite = citations.get(rec["citation"], {}).get("text", rec["citation"])
                details = {k: rec[k] for k in ("year", "venue", "backbone", "pretraining", "protocol")}
                details["reference"] = rec["source"]
                row = merged[key] = LeaderboardRow(method=rec["method"], dataset=rec["dataset"], rank1=None, mAP=None,
                                                   source="published", table=LATER_WORK_TABLE, citation=cite,
                                                   details=details)
            else:
                row.details["reference"] = " / ".join(dict.fromkeys([row.details["reference"], rec["source"]]))
            try:
                setattr(row, rec["metric"], float(rec["value"]))
            except ValueError:
                raise DataError(f"{path}:{line}: value {rec['value']!r} is not a number") from None
    return list(merged.values())


# The unit a file's metrics are stored in, and the factor to percent. Files say which (run.json: "metrics_unit";
# results.json: "meta": {"units": ...}); it is never guessed from the size of a value: a near-chance run stored in
# percent (0.8) and a good one stored as a fraction (0.8) look alike.
METRICS_UNITS = {"fraction": 100.0, "percent": 1.0}


def _unit(value: object, path: Path, key: str) -> str:
    if not isinstance(value, str) or value not in METRICS_UNITS:
        raise DataError(f"{path}: {key}={value!r} is not a metrics unit; use one of {', '.join(METRICS_UNITS)}")
    return str(value)


def run_json_unit(info: dict, path: Path) -> str:
    """The unit of ``run.json``'s ``results``: its ``metrics_unit``.

    A file without one is read as fractions only when it carries the ``config`` section that ``opreid-bench
    train`` has written since its first version, all of which stored fractions (and the recipe runner adds
    fractions to it); any other run.json without a unit is refused rather than guessed.
    """
    if "metrics_unit" in info:
        return _unit(info["metrics_unit"], path, "metrics_unit")
    if isinstance(info.get("config"), dict):
        return "fraction"  # written by opreid-bench train before metrics_unit existed: fractions
    raise DataError(f'{path}: no "metrics_unit" ("fraction" or "percent") for its results; add it (the unit is '
                    "not guessed from the values)")


def _as_percent(metrics: dict, key: str, unit: str, path: Path, where: str) -> float | None:
    """``metrics[key]`` converted from ``unit`` to percent (None when not measured); out of range -> DataError."""
    x = _metric(metrics, key, path, where)
    if x is None:
        return None
    top = 1.0 if unit == "fraction" else 100.0
    if not 0.0 <= x <= top:
        raise DataError(f"{path}: {where}.{key}={x!r} is outside [0, {top:g}], the range of its unit ({unit})")
    # not rounded: the tables round once, to one decimal (a value rounded to two decimals first can show another
    # digit, 51.0544 -> 51.05 -> "51.0" where the demo's table shows 51.1)
    return METRICS_UNITS[unit] * x


def load_runs(run_dirs: list[str | Path]) -> list[LeaderboardRow]:
    """Rows from run directories (``run.json`` written by ``train``/``evaluate``; metrics in the unit it names).

    A directory may also hold several runs (each sub-directory with a ``run.json``) or a ``results.json`` of
    ``benchmarks/reproduce_cpu.py``.
    """
    rows: list[LeaderboardRow] = []
    for d in run_dirs:
        d = Path(d)
        if not d.exists():
            raise DataError(f"{d}: run directory not found")
        found = sorted(d.glob("run.json")) + sorted(d.glob("*/run.json"))
        for run_json in found:
            rows.extend(_rows_from_run_json(run_json))
        for res in sorted(d.glob("results.json")):
            rows.extend(_rows_from_results_json(res))
        if not found and not (d / "results.json").exists():
            raise DataError(f"{d}: no run.json or results.json (is this a run directory of `opreid-bench train`?)")
    return rows


def runs_without_results(run_dirs: list[str | Path]) -> list[Path]:
    """The ``run.json`` files under ``run_dirs`` (as :func:`load_runs` finds them) that hold no results: runs trained
    with ``eval.at_end=false``, or evaluated only into their own files. Why: such runs give no row, and a leaderboard
    that is silently empty reads as a bug."""
    empty = []
    for d in run_dirs:
        for path in sorted(Path(d).glob("run.json")) + sorted(Path(d).glob("*/run.json")):
            try:
                info = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # load_runs names it
            if isinstance(info, dict) and not info.get("results"):
                empty.append(path)
    return empty


def _rows_from_run_json(path: Path) -> list[LeaderboardRow]:
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable run file ({exc})") from exc
    if not isinstance(info, dict):
        raise DataError(f"{path}: a run file must hold a JSON object, got {type(info).__name__}")
    details = {k: info[k] for k in ("model_format", "backbone", "height", "width", "epochs", "hardware", "minutes",
                                    "train_dataset") if k in info}
    results = info.get("results") or {}
    if not isinstance(results, dict):
        raise DataError(f"{path}: 'results' must map dataset -> metrics, got {type(results).__name__}")
    rows = []
    unit = run_json_unit(info, path) if results else "fraction"
    training = training_notes(info)
    details.update(training)
    method = str(info.get("method", path.parent.name)) + ("*" if "changed" in training else "")
    for dataset, metrics in sorted(results.items()):
        if not isinstance(metrics, dict):
            raise DataError(f"{path}: results.{dataset} must map metric -> value, got {metrics!r}")
        note = other_split_note(dataset, metrics)
        rows.append(LeaderboardRow(method=method, dataset=dataset,
                                   rank1=_as_percent(metrics, "rank1", unit, path, f"results.{dataset}"),
                                   mAP=_as_percent(metrics, "mAP", unit, path, f"results.{dataset}"),
                                   source=str(path.parent),
                                   details={**details, **({"other_split": note} if note else {})}))
    return rows


# Keys a run's row shows apart (backbone, input size, epochs) or that do not change what is trained.
_SHOWN_KEYS = ("method", "seed", "model.backbone", "model.pretrained", "model.last_stride", "data.height", "data.width",
               "optim.max_iters_per_epoch")
_COMPONENT_DATA_KEYS = ("cbe", "cbe_stripes", "random_erasing")


def training_notes(info: dict) -> dict[str, str]:
    """What a run's row must say about how it was trained, read from ``run.json``'s ``config``: ``init`` (ImageNet
    weights or random), ``iterations`` when epochs were capped (``optim.max_iters_per_epoch``), and ``changed``: the
    components (``model``, ``loss``, the CBE batch) that differ from its method's shipped config (an ablation such as
    ``model.dnl``), which also mark the method ``NAME*``; a recipe's schedule and batch size are its budget, not a
    change of method. Why: without them an ablation, a run from scratch and a shortened run all read as the method.
    Empty for a run.json without a config (another toolkit's, an ONNX evaluation)."""
    from opreid_bench.engine.config import SAME_RUN_KEYS, config_differences, load_method_config, with_defaults
    from opreid_bench.errors import ConfigError

    config = info.get("config")
    if not isinstance(config, dict):
        return {}
    notes: dict[str, str] = {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    optim = config.get("optim") if isinstance(config.get("optim"), dict) else {}
    notes["init"] = "ImageNet weights" if model.get("pretrained") else "random"
    if optim.get("max_iters_per_epoch"):
        notes["iterations"] = f"at most {optim['max_iters_per_epoch']} per epoch"
    try:
        shipped = load_method_config(str(config.get("method") or info.get("method")))
    except (ConfigError, OSError):
        return notes  # a method of the user's own: nothing to compare with
    run, own = with_defaults(config), shipped.to_dict()
    # the method's components (model, losses, the CBE batch), not the budget a recipe sets (schedule, batch size)
    pick = lambda c: {"model": c.get("model", {}), "loss": c.get("loss", {}),  # noqa: E731
                      "data": {k: (c.get("data") or {}).get(k) for k in _COMPONENT_DATA_KEYS}}
    diffs = config_differences(pick(run), pick(own), ignore=(*SAME_RUN_KEYS, *_SHOWN_KEYS),
                               labels=("here", "in the method's file"))
    if diffs:
        notes["changed"] = "; ".join(d.split(" here,")[0] for d in diffs[:4]) + (" ..." if len(diffs) > 4 else "")
    return notes


def other_split_note(dataset: str, metrics: dict) -> str | None:
    """How a run's evaluation differs from the published split of ``dataset`` (its query count against the dataset's
    known one), or None when it does not or cannot be told. Why: a split built with a small protocol and loaded as
    ``opreid`` is not the paper's OPReID, and its row must not read as a result on it."""
    from opreid_bench.data.datasets import DATASETS

    known = DATASETS.get(dataset).known_counts.get("query") if dataset in DATASETS else None
    valid, skipped = metrics.get("num_valid_queries"), metrics.get("num_skipped_queries")
    if known is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in (valid, skipped)):
        return None
    queries = valid + skipped
    if queries == known[0]:
        return None
    return f"another split: {queries:,} queries, the published one has {known[0]:,}"


def _metric(metrics: dict, key: str, path: Path, where: str) -> float | None:
    """``metrics[key]`` as a finite number (None when absent or NaN, i.e. not measured); else a DataError."""
    value = metrics.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{path}: {where}.{key} must be a finite number, got {value!r}")
    return float(value)


def _rows_from_results_json(path: Path) -> list[LeaderboardRow]:
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable results file ({exc})") from None
    if not isinstance(info, dict):
        raise DataError(f"{path}: a results file must hold a JSON object (method -> results), "
                        f"got {type(info).__name__}")
    rows = []
    meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
    unit: str | None = None
    for method, entry in sorted(info.items()):
        if not isinstance(entry, dict) or method in ("meta", "comparisons"):
            continue
        details = {k: entry[k] for k in ("backbone", "height", "width", "epochs", "hardware", "minutes") if k in entry}
        for dataset, metrics in sorted(entry.items()):
            if isinstance(metrics, dict) and "rank1" in metrics:
                if unit is None:
                    if "units" not in meta:
                        raise DataError(f'{path}: no "meta": {{"units": "fraction" | "percent"}} for its metrics; '
                                        "add it (the unit is not guessed from the values)")
                    unit = _unit(meta["units"], path, "meta.units")
                rows.append(LeaderboardRow(method=method, dataset=DATASET_ALIASES.get(dataset, dataset),
                                           rank1=_as_percent(metrics, "rank1", unit, path, f"{method}.{dataset}"),
                                           mAP=_as_percent(metrics, "mAP", unit, path, f"{method}.{dataset}"),
                                           source=str(entry.get("run_dir", path.parent)), details=details))
    return rows


def select_rows(rows: list[LeaderboardRow], datasets: Sequence[str] = (), tables: Sequence[str] = (),
                metric: str | None = None) -> list[LeaderboardRow]:
    """The rows of ``datasets`` (all when empty), published rows of ``tables`` only (measured rows kept), and rows
    that report ``metric``. A dataset or table that no row has is an error naming the ones there are: a typo must not
    look like an empty leaderboard."""
    known = sorted({r.dataset for r in rows})

    def chosen(dataset: str) -> bool:  # a name chooses its variants read with loader options too
        return any(dataset == d or dataset.startswith(f"{d} (") for d in datasets)

    unknown = [d for d in datasets if not any(k == d or k.startswith(f"{d} (") for k in known)]
    if unknown:
        raise OpreidError(f"--dataset {unknown[0]}: no row has this dataset; "
                          + (f"known: {', '.join(known)}" if known else "there are no rows at all (no published rows, "
                             "and no run with results)"))
    known_tables = sorted({r.table for r in rows if r.source == "published" and r.table})
    unknown = [t for t in tables if t not in known_tables]
    if unknown:
        raise OpreidError(f"--table {unknown[0]!r}: no published row has this table; known: "
                          f"{', '.join(repr(t) for t in known_tables)}")
    if datasets:
        rows = [r for r in rows if chosen(r.dataset)]
    if tables:
        rows = [r for r in rows if r.source != "published" or r.table in tables]
    if metric:
        rows = [r for r in rows if getattr(r, metric) is not None]
    return rows
