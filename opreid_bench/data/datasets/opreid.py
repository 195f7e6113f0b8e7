"""OPReID (Yan et al., ICCV 2021): Market-style folders plus an optional ``manifest.csv`` with the occlusion flag.

The public release's own layout is not documented, so the loader reads the layout ``build-split`` writes (and any
Market-style copy): ``OPReID/{bounding_box_train,query,bounding_box_test}/PPPP_cC_....jpg`` and, when present,
``manifest.csv`` with columns ``path,source_path,pid,camid,split,occluded,...`` (``path`` relative to the dataset
folder). The manifest sets each record's ``occluded`` flag (and ``scene`` when it has that column); images it does
not list keep ``occluded=None`` and are reported in the notes, as are manifest rows without an image.
"""

from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from opreid_bench.data.datasets.base import SPLITS, RawSplits, VerificationReport
from opreid_bench.data.datasets.market1501 import MarketStyleDataset
from opreid_bench.data.records import ImageRecord
from opreid_bench.errors import DataError
from opreid_bench.outputs import MARKER, read_marker

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def parse_flag(value: str | None) -> bool | None:
    """``occluded`` cell -> bool; an empty cell is unknown (None); anything else raises ValueError."""
    if value is None or not value.strip():
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(value)


class OPReID(MarketStyleDataset):
    """OPReID: train 27,228/1,744, query 4,200/3,515, gallery 41,014/6,174 (images/ids); ~6,000 cameras."""

    name = "opreid"
    layout = ("OPReID/{bounding_box_train,query,bounding_box_test}/PPPP_cC_*.jpg "
              "[+ OPReID/manifest.csv with columns path,split,occluded,...]")
    folder_names = ("OPReID", "opreid", "OPReID_Dataset")
    known_counts = {"train": (27_228, 1_744), "query": (4_200, 3_515), "gallery": (41_014, 6_174)}
    option_defaults: ClassVar[dict[str, str]] = {"manifest": "manifest.csv"}
    protocol = "opreid"

    def _manifest_path(self, dataset_dir: Path) -> Path | None:
        given = Path(self.options["manifest"]).expanduser()
        path = given if given.is_absolute() else dataset_dir / given
        if path.is_file():
            return path
        if self.options["manifest"] != self.option_defaults["manifest"]:
            raise DataError(f"{path}: manifest not found (option manifest={self.options['manifest']})")
        return None

    def _read(self, dataset_dir: Path) -> RawSplits:
        raw = super()._read(dataset_dir)
        manifest = self._manifest_path(dataset_dir)
        if manifest is None:
            raw.notes.append(f"no {self.options['manifest']} in {dataset_dir}: occlusion flags unknown")
            return raw
        rows = _read_manifest_rows(manifest)
        by_rel: dict[str, tuple[bool | None, str | None, int | None]] = {}
        for line, row in rows:
            rel = _relative(row["path"], dataset_dir)
            try:
                flag = parse_flag(row.get("occluded"))
            except ValueError:
                raise DataError(f"{manifest}:{line}: occluded={row['occluded']!r} is not true/false") from None
            pid = row.get("pid", "").strip()
            # keyed ignoring case, as the split folders are found (query/ or Query/)
            by_rel[rel.lower()] = (flag, (row.get("scene") or "").strip() or None, int(pid) if pid.lstrip("-").isdigit()
                           else None)
        matched: set[str] = set()
        pid_mismatch = unlisted = 0
        for split in SPLITS:
            updated: list[ImageRecord] = []
            for rec in getattr(raw, split):
                rel = os.path.relpath(rec.path, dataset_dir).replace(os.sep, "/").lower()
                info = by_rel.get(rel)
                if info is None:
                    unlisted += 1
                    updated.append(rec)
                    continue
                matched.add(rel)
                flag, scene, pid = info
                if pid is not None and pid != rec.pid:
                    pid_mismatch += 1
                updated.append(replace(rec, occluded=flag, scene=scene))
            setattr(raw, split, updated)
        if unlisted:
            raw.notes.append(f"{unlisted:,} images are not in {manifest.name}: occluded flag unknown for them")
        if len(by_rel) > len(matched):
            missing = sorted(set(by_rel) - matched)
            raw.notes.append(f"{len(missing):,} rows of {manifest.name} have no image (e.g. {', '.join(missing[:3])})")
        if pid_mismatch:
            raw.notes.append(f"{pid_mismatch:,} rows of {manifest.name} give a pid other than the file name's")
        return raw


    def verify(self) -> VerificationReport:
        """As for any dataset, except that a split ``build-split`` or ``sample`` wrote is compared with the counts of
        the protocol it was drawn by (its ``.opreid-output.json``), not with the published OPReID's: a split of
        ``opreid-tiny`` is right when it has opreid-tiny's counts."""
        report = super().verify()
        built = protocol_counts_of_built_split(self.dataset_dir())
        if built is not None:
            name, command, counts = built
            report.known_counts = counts
            published = ", ".join(f"{s} {i:,}/{n:,}" for s, (i, n) in self.known_counts.items())
            report.notes.append(f"known counts: those of protocol '{name}', which `{command}` drew this split by (its "
                                f"{MARKER}); the published OPReID has {published} (images/ids)")
        return report


def protocol_counts_of_built_split(folder: Path) -> tuple[str, str, dict[str, tuple[int, int]]] | None:
    """(protocol name, command, {split: (images, ids)}) from the marker of a complete split ``build-split`` or
    ``sample`` wrote into ``folder``; None for any other folder (or a marker without the counts)."""
    marker = read_marker(folder)
    if not marker or marker.get("command") not in ("build-split", "sample") or not marker.get("complete"):
        return None
    protocol = (marker.get("options") or {}).get("protocol")
    if not isinstance(protocol, dict) or not isinstance(protocol.get("counts"), dict):
        return None
    try:
        counts = {s: (int(protocol["counts"][s][0]), int(protocol["counts"][s][1])) for s in SPLITS}
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return str(protocol.get("name", "?")), str(marker["command"]), counts


def _relative(path: str, dataset_dir: Path) -> str:
    """A manifest path as a posix path relative to the dataset folder (absolute paths inside it are accepted)."""
    p = Path(path.strip())
    if p.is_absolute():
        try:
            return p.relative_to(dataset_dir).as_posix()
        except ValueError:
            return p.as_posix()
    return p.as_posix()


def _read_manifest_rows(manifest: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of an OPReID ``manifest.csv``; a file without ``path`` and ``occluded`` is a DataError."""
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or [])
        missing = {"path", "occluded"} - columns
        if missing:
            raise DataError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}; "
                            f"found {', '.join(reader.fieldnames or []) or 'none'}")
        return [(i, row) for i, row in enumerate(reader, start=2)]
