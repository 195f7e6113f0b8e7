"""A manifest: a CSV or parquet table with columns ``path,pid,camid,split[,occluded][,scene]``.

``path`` may be absolute or relative to the manifest's folder. ``split`` is one of train, query, gallery (optional in
a raw pool for ``build-split``). ``occluded`` accepts true/false/1/0/yes/no or an empty cell (unknown). Rows keep the
manifest's order. A row whose file does not exist is an error for a dataset and a skipped, listed entry for a pool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opreid_bench.data.datasets.base import SPLITS, RawSplits, ReIDDataset
from opreid_bench.data.datasets.opreid import parse_flag
from opreid_bench.data.records import ImageRecord
from opreid_bench.errors import DataError

MANIFEST_NAMES = ("manifest.csv", "manifest.parquet")


@dataclass
class ManifestRows:
    """A parsed manifest: one record per row, its split (None where the column is absent) and missing files."""

    path: Path
    records: list[ImageRecord]
    splits: list[str | None]
    missing: list[str]


def find_manifest(path: str | Path, require_split: bool = True) -> Path:
    """``path`` itself if it is a file, else ``path/manifest.csv`` or ``path/manifest.parquet``; else a DataError
    (for a pool, ``require_split`` False, it names the folder pool format a folder of crops needs)."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    columns = "path,pid,camid,split[,occluded]" if require_split else "path,pid,camid[,occluded]"
    hint = "" if require_split else (" (a folder of crops named by identity and camera: --pool-format folder "
                                     "[--pattern REGEX])")
    if p.is_dir():
        for name in MANIFEST_NAMES:
            if (p / name).is_file():
                return p / name
        raise DataError(f"{p}: no {' or '.join(MANIFEST_NAMES)} in this folder; expected a CSV/parquet manifest "
                        f"with columns {columns}{hint}")
    raise DataError(f"{p}: manifest not found; expected a CSV/parquet file with columns {columns}{hint}")


def _read_table(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except ImportError as exc:
        raise DataError(f"{path}: reading parquet needs pyarrow (pip install 'opreid-bench[parquet]'): {exc}") from None
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for malformed files
        raise DataError(f"{path}: cannot read manifest ({type(exc).__name__}: {exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    df = df.astype(object).where(df.notna(), None)
    return df.to_dict("records")


def _as_int(value: Any, where: str, column: str) -> int:
    if isinstance(value, bool):
        raise DataError(f"{where}: {column}={value!r} is not an integer")
    try:
        number = float(value) if not isinstance(value, int) else value
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {column}={value!r} is not an integer") from None


def read_manifest(path: str | Path, *, require_split: bool) -> ManifestRows:
    """Parse a manifest; a missing column or a bad cell is a DataError naming the file and row."""
    manifest = find_manifest(path, require_split)
    rows = _read_table(manifest)
    columns = set(rows[0]) if rows else set()
    required = {"path", "pid", "camid"} | ({"split"} if require_split else set())
    if not rows:
        raise DataError(f"{manifest}: manifest has no rows")
    missing_cols = required - columns
    if missing_cols:
        raise DataError(f"{manifest}: missing column(s) {', '.join(sorted(missing_cols))}; "
                        f"found {', '.join(sorted(columns))}")
    base = manifest.parent
    records: list[ImageRecord] = []
    splits: list[str | None] = []
    missing: list[str] = []
    seen: dict[str, tuple[int, int, int]] = {}  # file -> (pid, camid, row) of its first row
    listed: dict[int, int] = {}  # row -> index of its record
    for i, row in enumerate(rows):
        where = f"{manifest}: row {i + 1}"
        rel = str(row["path"] or "").strip()
        if not rel:
            raise DataError(f"{where}: empty path")
        split = None
        if "split" in columns:
            split = str(row["split"] or "").strip().lower() or None
            if split is not None and split not in SPLITS:
                raise DataError(f"{where}: split={row['split']!r}; use train, query or gallery")
            if split is None and require_split:
                raise DataError(f"{where}: empty split; use train, query or gallery")
        try:
            occluded = parse_flag(None if row.get("occluded") is None else str(row["occluded"]))
        except ValueError:
            raise DataError(f"{where}: occluded={row['occluded']!r} is not true/false") from None
        scene = (str(row["scene"]).strip() or None) if row.get("scene") is not None else None
        full = Path(rel).expanduser()
        full = full if full.is_absolute() else base / full
        if not full.is_file():
            missing.append(rel)
            continue
        pid, camid = _as_int(row["pid"], where, "pid"), _as_int(row["camid"], where, "camid")
        # one file however its path is spelled (crops/a.jpg, pool/../crops/a.jpg, a link to it)
        first = seen.setdefault(os.path.realpath(full), (pid, camid, i + 1))
        if first[:2] != (pid, camid):
            raise DataError(f"{where}: {rel} is also row {first[2]} with another identity or camera "
                            f"(pid {first[0]}, camid {first[1]} there; pid {pid}, camid {camid} here); keep one")
        if first[2] != i + 1 and splits[listed[first[2]]] == split:
            continue  # the same file again in the same split: one crop, or it could be its own match
        listed[i + 1] = len(records)
        records.append(ImageRecord(str(full), pid, camid, occluded, scene))
        splits.append(split)
    return ManifestRows(manifest, records, splits, missing)


class ManifestDataset(ReIDDataset):
    """Train/query/gallery from a manifest file (``--root`` is the CSV/parquet file or its folder)."""

    name = "manifest"
    layout = "a CSV/parquet file with columns path,pid,camid,split[,occluded][,scene] (paths relative to it)"

    def split_folders(self) -> dict[str, str]:
        return {}

    def dataset_dir(self) -> Path:
        if self._dir is None:
            self._dir = find_manifest(self.root).parent
        return self._dir

    def _read(self, dataset_dir: Path) -> RawSplits:
        rows = read_manifest(self.root, require_split=True)
        if rows.missing:
            raise DataError(f"{rows.path}: {len(rows.missing):,} listed file(s) do not exist "
                            f"(e.g. {', '.join(rows.missing[:3])}; paths resolve against {rows.path.parent})")
        raw = RawSplits()
        for rec, split in zip(rows.records, rows.splits):
            getattr(raw, split or "train").append(rec)
        return raw
