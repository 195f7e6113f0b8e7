"""Feature files: query and gallery features with their labels in one HDF5 file (layout: docs/reference/file-formats.md).

::

    /query/features    (Nq, D) float      /gallery/features    (Ng, D) float
    /query/pids        (Nq,)   int        /gallery/pids        (Ng,)   int
    /query/camids      (Nq,)   int        /gallery/camids      (Ng,)   int
    /query/paths       (Nq,)   str, opt.  /gallery/paths       (Ng,)   str, optional
    /query/occluded    (Nq,)   bool, opt. /gallery/occluded    (Ng,)   bool, optional
    root attributes: format="opreid-bench-features", format_version=1, plus free metadata (dataset, method, junk...)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opreid_bench.atomic import atomic_path
from opreid_bench.errors import FeatureFileError

FORMAT_NAME = "opreid-bench-features"
FORMAT_VERSION = 1
SIDES = ("query", "gallery")
REQUIRED = ("features", "pids", "camids")


@dataclass
class FeatureSet:
    """Features (N x D) of one side (query or gallery) with pids, camids and optional paths / occluded flags."""

    features: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    paths: list[str] | None = None
    occluded: np.ndarray | None = None

    def __len__(self) -> int:
        return int(np.asarray(self.features).shape[0])

    def problems(self) -> list[str]:
        """Every inconsistency of this set as ``"<field>: <what is wrong>"`` (empty when it is well-formed)."""
        out: list[str] = []
        f = np.asarray(self.features)
        if f.ndim != 2:
            return [f"features: must be 2-D (N x D), got shape {f.shape}"]
        n = f.shape[0]
        if n == 0:
            out.append("features: empty (0 rows)")
        if f.dtype.kind not in "fiu":
            out.append(f"features: must be real numbers, got dtype {f.dtype}")
        elif f.dtype.kind == "f" and n and not np.isfinite(f).all():
            out.append(f"features: NaN/inf in row {int(np.flatnonzero(~np.isfinite(f).all(axis=1))[0])}")
        for name in ("pids", "camids", "occluded"):
            v = getattr(self, name)
            if v is None:
                continue
            v = np.asarray(v)
            if v.ndim != 1 or v.shape[0] != n:
                out.append(f"{name}: expected {n} entries (one per feature row), got shape {v.shape}")
            elif name != "occluded" and v.dtype.kind not in "iu":
                out.append(f"{name}: must be integers, got dtype {v.dtype}")
            elif name == "occluded" and v.dtype.kind not in "biu":
                out.append(f"occluded: must be booleans, got dtype {v.dtype}")
        if self.paths is not None and len(self.paths) != n:
            out.append(f"paths: expected {n} entries, got {len(self.paths)}")
        return out


def _clean_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_clean_attr(v) for v in value.tolist()]
    return value


EXTRACT_WRITER = "opreid-bench extract"  # the ``written_by`` attribute of a file ``extract`` wrote


def is_extract_output(path: Path) -> bool:
    """True when ``path`` is a feature file whose ``written_by`` attribute is :data:`EXTRACT_WRITER` (``extract --out``
    replaces only such a file; a feature file made by other means is the user's)."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            return str(h5.attrs.get("written_by", "")) == EXTRACT_WRITER
    except (OSError, ValueError):
        return False


def write_feature_file(path: str | os.PathLike[str], query: FeatureSet, gallery: FeatureSet,
                       attrs: dict | None = None) -> None:
    """Write query and gallery features to ``path`` (HDF5, atomically; same inputs give identical bytes).

    ``attrs`` holds free metadata (str, int, float, bool or lists of them), e.g. ``{"dataset": "market1501",
    "junk": "market"}``; ``opreid-bench evaluate`` uses a ``junk`` attribute as its default junk rule.
    """
    import h5py

    path = Path(path)
    for side, fs in zip(SIDES, (query, gallery), strict=True):
        bad = fs.problems()
        if bad:
            raise FeatureFileError(f"{path}: cannot write /{side}: {bad[0]}")
    if np.asarray(query.features).shape[1] != np.asarray(gallery.features).shape[1]:
        raise FeatureFileError(f"{path}: query and gallery feature dimensions differ "
                               f"({np.asarray(query.features).shape[1]} vs {np.asarray(gallery.features).shape[1]})")
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as h5:
        h5.attrs["format"] = FORMAT_NAME
        h5.attrs["format_version"] = FORMAT_VERSION
        for key, value in sorted((attrs or {}).items()):
            if key in ("format", "format_version"):
                continue
            try:
                h5.attrs[key] = value
            except TypeError as exc:
                raise FeatureFileError(f"{path}: attribute {key!r} has an unsupported type "
                                       f"{type(value).__name__} (use str, int, float, bool or lists)") from exc
        for side, fs in zip(SIDES, (query, gallery), strict=True):
            g = h5.create_group(side, track_order=True)
            g.create_dataset("features", data=np.asarray(fs.features), track_times=False)
            g.create_dataset("pids", data=np.asarray(fs.pids, dtype=np.int64), track_times=False)
            g.create_dataset("camids", data=np.asarray(fs.camids, dtype=np.int64), track_times=False)
            if fs.paths is not None:
                g.create_dataset("paths", data=np.array([str(p) for p in fs.paths], dtype=object),
                                 dtype=h5py.string_dtype("utf-8"), track_times=False)
            if fs.occluded is not None:
                g.create_dataset("occluded", data=np.asarray(fs.occluded).astype(bool), track_times=False)


def _read_side(h5: Any, path: Path, side: str) -> FeatureSet:
    import h5py

    if side not in h5 or not isinstance(h5[side], h5py.Group):
        raise FeatureFileError(f"{path}: missing group /{side} (layout: docs/reference/file-formats.md)")
    g = h5[side]
    for name in REQUIRED:
        if name not in g or not isinstance(g[name], h5py.Dataset):
            raise FeatureFileError(f"{path}: missing dataset /{side}/{name} (layout: docs/reference/file-formats.md)")
    if "paths" in g and (not isinstance(g["paths"], h5py.Dataset) or g["paths"].dtype.kind not in "SOU"):
        raise FeatureFileError(f"{path}: /{side}/paths must hold strings (the image paths), got "
                               f"{getattr(g['paths'], 'dtype', 'a group')}")
    try:
        features = g["features"][()]
        pids = g["pids"][()]
        camids = g["camids"][()]
        paths = [str(p) for p in g["paths"].asstr()[()]] if "paths" in g else None
        occluded = g["occluded"][()] if "occluded" in g else None
    except (TypeError, ValueError, OSError) as exc:
        raise FeatureFileError(f"{path}: unreadable dataset under /{side} ({exc})") from exc
    if occluded is not None and np.asarray(occluded).dtype.kind in "iu":
        if not np.isin(occluded, (0, 1)).all():
            raise FeatureFileError(f"{path}: /{side}/occluded must hold booleans (0/1)")
        occluded = np.asarray(occluded).astype(bool)
    fs = FeatureSet(features=np.asarray(features), pids=np.asarray(pids), camids=np.asarray(camids), paths=paths,
                    occluded=None if occluded is None else np.asarray(occluded))
    bad = fs.problems()
    if bad:
        raise FeatureFileError(f"{path}: /{side}/{bad[0]}")
    fs.pids = fs.pids.astype(np.int64, copy=False)
    fs.camids = fs.camids.astype(np.int64, copy=False)
    return fs


def read_feature_file(path: str | os.PathLike[str]) -> tuple[FeatureSet, FeatureSet, dict]:
    """Read ``(query, gallery, attrs)`` from an HDF5 feature file; layout faults raise :class:`FeatureFileError`."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FeatureFileError(f"{path}: no such feature file")
    if not h5py.is_hdf5(path):
        raise FeatureFileError(f"{path}: not an HDF5 file (expected the layout of docs/reference/file-formats.md)")
    try:
        with h5py.File(path, "r") as h5:
            query = _read_side(h5, path, "query")
            gallery = _read_side(h5, path, "gallery")
            attrs = {k: _clean_attr(v) for k, v in h5.attrs.items()}
    except (OSError, KeyError, RuntimeError, ValueError) as exc:  # h5py's answers to a corrupt file
        raise FeatureFileError(f"{path}: cannot read HDF5 file ({' '.join(str(exc).split())})") from None
    if query.features.shape[1] != gallery.features.shape[1]:
        raise FeatureFileError(f"{path}: /query/features has dimension {query.features.shape[1]} but "
                               f"/gallery/features has {gallery.features.shape[1]}")
    return query, gallery, attrs
