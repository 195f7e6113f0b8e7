"""Dataset loaders: one small class per benchmark, registered by name in ``DATASETS``.

    >>> from opreid_bench.data.datasets import load_dataset
    >>> data = load_dataset("partial_reid", "/data/partial_reid", query_folder="partial")  # doctest: +SKIP
    >>> len(data.query), len(data.gallery)                                                  # doctest: +SKIP
    (300, 300)

``load_pool`` reads a raw pool of crops for ``build-split`` (a manifest, a folder parsed with a regex, or any
dataset's images with their original pids).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from opreid_bench.data.datasets.base import (
    IMAGE_EXTENSIONS,
    ReIDDataset,
    VerificationReport,
    is_image_name,
    scan_images,
)
from opreid_bench.data.datasets.cuhk03 import CUHK03Labeled
from opreid_bench.data.datasets.dukemtmc import DukeMTMCReID
from opreid_bench.data.datasets.folder import DEFAULT_PATTERN, FolderDataset, compile_pattern, record_from_match
from opreid_bench.data.datasets.manifest import ManifestDataset, read_manifest
from opreid_bench.data.datasets.market1501 import Market1501
from opreid_bench.data.datasets.occluded_duke import OccludedDuke
from opreid_bench.data.datasets.occluded_reid import OccludedREID
from opreid_bench.data.datasets.opreid import OPReID
from opreid_bench.data.datasets.partial_ilids import PartialILIDS
from opreid_bench.data.datasets.partial_reid import PartialREID
from opreid_bench.data.datasets.pool import PoolDataset
from opreid_bench.data.records import DatasetSplits, ImageRecord
from opreid_bench.errors import DataError
from opreid_bench.registry import Registry

DATASETS: Registry[type[ReIDDataset]] = Registry("dataset")
"""Every dataset loader by name (``DATASETS.names()``, ``DATASETS.get(name)``); a new one registers with
``@DATASETS.register("name")`` on a :class:`ReIDDataset` subclass."""
for _cls in (Market1501, DukeMTMCReID, OccludedDuke, OccludedREID, PartialREID, PartialILIDS, OPReID, CUHK03Labeled,
             FolderDataset, ManifestDataset, PoolDataset):
    DATASETS.register(_cls.name)(_cls)


class Pool(list[ImageRecord]):
    """A raw pool of crops (a list of records) plus ``skipped``: "path: reason" for every file left out."""

    def __init__(self, records: list[ImageRecord] | None = None, skipped: list[str] | None = None) -> None:
        super().__init__(records or [])
        self.skipped: list[str] = list(skipped or [])


def get_dataset(name: str, root: str | os.PathLike[str], **options: Any) -> ReIDDataset:
    """An instance of the loader registered as ``name`` (unknown names list the known ones)."""
    cls = DATASETS.get(name)
    return cls(root, **options)


def load_dataset(name: str, root: str | os.PathLike[str], **options: Any) -> DatasetSplits:
    """Train (pids relabelled 0..N-1) / query / gallery records of dataset ``name`` under ``root``.

    Raises :class:`DataError` when the dataset folder is missing or malformed; names that do not parse are in
    ``DatasetSplits.unparsed``.
    """
    return get_dataset(name, root, **options).load()


def _not_found(listed: str, manifest: Path) -> str:
    """Why a crop a manifest lists was left out, with where it was looked for: a relative path is read against the
    manifest's folder, not the working folder, and the user needs to see which folder that was."""
    full = Path(listed).expanduser()
    if full.is_absolute():
        return f"{listed}: file not found"
    return f"{listed}: file not found at {manifest.parent / full} (relative paths are read against the manifest's folder)"


def load_pool(path: str | os.PathLike[str], fmt: str = "manifest", *, pattern: str | None = None) -> Pool:
    """A raw pool for ``build-split``: every crop with its dataset pid and camid (not relabelled).

    ``fmt`` is ``manifest`` (CSV/parquet ``path,pid,camid[,scene][,split][,occluded]``; relative paths resolve
    against the manifest's folder), ``folder`` (every image under ``path``, its relative path parsed with
    ``pattern``, a regex with named groups ``pid`` and ``camid``) or a dataset name (all its splits concatenated with
    original pids, see ``ReIDDataset.pool_records``). Files left out are listed in ``Pool.skipped``.
    """
    if fmt == "manifest":
        rows = read_manifest(path, require_split=False)
        return Pool(rows.records, [_not_found(p, rows.path) for p in rows.missing])
    if fmt == "folder":
        root = Path(path).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: no such folder (pool format 'folder')")
        regex = compile_pattern(pattern or DEFAULT_PATTERN, f"pool {root}")
        scan = scan_images(root, recursive=True)
        pool = Pool(skipped=[f"{rel}: not an image file" for rel in scan.ignored])
        for rel in scan.images:
            rec = record_from_match(regex, scan.full_path(rel), rel)
            if rec is None:
                m = regex.search(rel)
                pool.skipped.append(f"{rel}: name does not match the pattern" if m is None else
                                    f"{rel}: pid {m.group('pid')!r} or camid {m.group('camid')!r} is not a whole "
                                    "number (the pattern matched)")
            elif rec.pid < 0:
                pool.skipped.append(f"{rel}: junk (negative pid)")
            else:
                pool.append(rec)
        return pool
    if fmt not in DATASETS:
        raise DataError(f"unknown pool format '{fmt}'; use manifest, folder or a dataset: {', '.join(DATASETS)}")
    if pattern is not None:
        raise DataError(f"--pattern applies to the 'folder' pool format only, not '{fmt}'")
    dataset = get_dataset(fmt, path)
    raw = dataset.read()
    return Pool(dataset.pool_records(), [f"{p}: name does not parse" for p in raw.unparsed])


__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "Pool",
    "ReIDDataset",
    "VerificationReport",
    "get_dataset",
    "is_image_name",
    "load_dataset",
    "load_pool",
]
