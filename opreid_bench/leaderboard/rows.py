"""Leaderboard rows: published numbers (baselines/published/) and measured runs (run directories)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from opreid_bench.errors import DataError

PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "baselines" / "published"

DATASET_TITLES = {
    "opreid": "OPReID",
    "occluded_duke": "Occluded-Duke",
    "occluded_reid": "Occluded-REID",
    "partial_reid": "Partial-REID",
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
                "source": self.source, "table": self.table, "citation": self.citation, **self.details}


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
    return list(merged.values())


def _as_percent(x: float | None) -> float | None:
    if x is None:
        return None
    return round(100.0 * float(x), 2) if float(x) <= 1.0 else round(float(x), 2)


def load_runs(run_dirs: list[str | Path]) -> list[LeaderboardRow]:
    """Rows from run directories (``run.json`` written by ``train``/``evaluate``; metrics stored as fractions).

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


def _rows_from_run_json(path: Path) -> list[LeaderboardRow]:
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable run file ({exc})") from exc
    details = {k: info[k] for k in ("backbone", "height", "width", "epochs", "hardware", "minutes", "train_dataset")
               if k in info}
    results = info.get("results") or {}
    rows = []
    for dataset, metrics in sorted(results.items()):
        rows.append(LeaderboardRow(method=str(info.get("method", path.parent.name)), dataset=dataset,
                                   rank1=_as_percent(metrics.get("rank1")), mAP=_as_percent(metrics.get("mAP")),
                                   source=str(path.parent), details=details))
    return rows


def _rows_from_results_json(path: Path) -> list[LeaderboardRow]:
    info = json.loads(path.read_text())
    rows = []
    for method, entry in sorted(info.items()):
        if not isinstance(entry, dict):
            continue
        details = {k: entry[k] for k in ("backbone", "height", "width", "epochs", "hardware", "minutes") if k in entry}
        for dataset, metrics in sorted(entry.items()):
            if isinstance(metrics, dict) and "rank1" in metrics:
                rows.append(LeaderboardRow(method=method, dataset=dataset, rank1=_as_percent(metrics["rank1"]),
                                           mAP=_as_percent(metrics.get("mAP")),
                                           source=str(entry.get("run_dir", path.parent)), details=details))
    return rows
