"""The keypoint cache ``keypoints.h5``: COCO-17 keypoints per crop, keyed by content, never by path spelling.

Layout of ``keypoints.h5`` (one row per crop, rows sorted by ``source_path``; format version 1)::

    attrs:  format = "opreid-keypoints", version = 1, backend = "<backend cache key>",
            keypoint_names = JSON list of the 17 COCO names (the order of the keypoint axis)
    source_path  (N,)        utf-8 string   the crop's path as the pool lists it
    sha1         (N,)        40-byte ASCII  sha1 of the crop file's bytes (a changed file is annotated again)
    abs_path     (N,)        utf-8 string   optional (cache files): the absolute, normalised path
    xy           (N, 17, 2)  float32        keypoint x, y in the crop's pixel coordinates
    score        (N, 17)     float32        keypoint score in [0, 1] (meaning: see the backend)
    image_size   (N, 2)      int32          crop width, height
    detected     (N,)        bool           False when the backend found no person
    support      (N, 17)     float32        optional: person-segmentation support per keypoint, NaN where unknown
                                            (``Keypoints.support``; files without it read as "unknown")
    flip_shift   (N, 17)     float32        optional: distance to the keypoint on the mirror image, in crop heights,
                                            NaN where unknown (``Keypoints.flip_shift``; files without it: unknown)
    people       (N, P, 9)   float32        optional: the people a person detector found (``Keypoints.people``),
                                            rows of NaN past the last one; files without it read as "unknown"

Cache key: the backend's ``cache_key`` (which hashes what the backend reads: the precomputed file's content, the
installed mediapipe version, the mmpose config and checkpoint content, plus options) and the crop's sha1. Backends
whose answer depends on where a crop is (``precomputed`` looks the crop up by path) add the crop's absolute,
normalised path, so ``pool/manifest.csv`` and ``$PWD/pool/manifest.csv`` hit the same entries. Entries of another
backend key are stale: a run ignores them (and the merged file drops them).

Kill safety: while a run is in progress every flushed batch is its own small file in ``keypoints.h5.parts/``, each
written atomically; a killed run leaves complete parts behind, and the next run loads them and skips what they
hold. At the end all rows are merged into ``keypoints.h5`` (atomic replace, sorted, so an interrupted-and-resumed run
gives the same file as an uninterrupted one) and the parts are deleted. A part or cache file that cannot be read
(a crash mid-write on a system without durable writes) is deleted and its crops are annotated again.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opreid_bench.atomic import atomic_path
from opreid_bench.errors import DataError
from opreid_bench.splits.keypoints import (
    COCO17_NAMES,
    KEYPOINT_SIGNALS,
    NUM_KEYPOINTS,
    PEOPLE_WIDTH,
    Keypoints,
    stack_signal,
)

FORMAT = "opreid-keypoints"
VERSION = 1
FILENAME = "keypoints.h5"
MIN_PEOPLE_WIDTH = 6  # people slots per crop at least (a fixed width keeps Ray's batches of one shape)


@dataclass
class Entry:
    """One cached crop: its content hash and its keypoints."""

    sha1: str
    keypoints: Keypoints
    abs_path: str | None = None


def write_h5(path: str | Path, entries: dict[str, Entry], backend: str, *, abs_paths: bool = False,
             durable: bool = True) -> None:
    """Write ``entries`` (source path -> Entry) to ``path`` atomically, rows sorted by source path.

    ``abs_paths`` adds the ``abs_path`` dataset (cache files: what a later run matches path-dependent entries by).
    """
    import h5py

    keys = sorted(entries)
    n = len(keys)
    xy = np.zeros((n, NUM_KEYPOINTS, 2), np.float32)
    score = np.zeros((n, NUM_KEYPOINTS), np.float32)
    size = np.zeros((n, 2), np.int32)
    detected = np.zeros(n, bool)
    signals = {name: stack_signal([entries[k].keypoints for k in keys], name) for name in KEYPOINT_SIGNALS}
    people = stack_people([entries[k].keypoints.people for k in keys])
    for i, k in enumerate(keys):
        kp = entries[k].keypoints
        xy[i], score[i], detected[i] = kp.xy, kp.score, kp.detected
        size[i] = kp.image_size if kp.image_size is not None else (0, 0)
    with atomic_path(path, durable=durable) as tmp, h5py.File(tmp, "w", track_order=False) as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["backend"] = backend
        f.attrs["keypoint_names"] = json.dumps(COCO17_NAMES)
        opts = {"track_times": False}
        f.create_dataset("source_path", data=np.array(keys, dtype=object), dtype=h5py.string_dtype("utf-8"), **opts)
        f.create_dataset("sha1", data=np.array([entries[k].sha1 for k in keys], dtype="S40"), **opts)
        f.create_dataset("xy", data=xy, **opts)
        f.create_dataset("score", data=score, **opts)
        f.create_dataset("image_size", data=size, **opts)
        f.create_dataset("detected", data=detected, **opts)
        for name, values in signals.items():
            if not np.isnan(values).all():
                f.create_dataset(name, data=values, **opts)
        if people is not None:
            f.create_dataset("people", data=people, **opts)
        if abs_paths:
            absolute = [entries[k].abs_path or os.path.abspath(k) for k in keys]
            f.create_dataset("abs_path", data=np.array(absolute, dtype=object), dtype=h5py.string_dtype("utf-8"),
                             **opts)


def stack_people(people: list[np.ndarray | None]) -> np.ndarray | None:
    """``Keypoints.people`` of many crops as one (N, P, 9) array, NaN rows past each crop's last person; None when no
    crop has them (a backend without a person detector)."""
    if all(p is None for p in people):
        return None
    width = max(MIN_PEOPLE_WIDTH, max(len(p) for p in people if p is not None))
    out = np.full((len(people), width, PEOPLE_WIDTH), np.nan, np.float32)
    for i, p in enumerate(people):
        if p is not None and len(p):
            out[i, : len(p)] = p
    return out


def read_h5(path: str | Path) -> tuple[dict[str, Entry], str]:
    """Read a keypoint file: (source path -> Entry, backend key). Raises DataError on a wrong layout."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable HDF5 keypoint file ({exc})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise DataError(f"{path}: not an opreid keypoint file (attribute format != '{FORMAT}')")
        missing = [k for k in ("source_path", "sha1", "xy", "score", "image_size", "detected") if k not in f]
        if missing:
            raise DataError(f"{path}: keypoint file lacks datasets {', '.join(missing)}")
        names = json.loads(f.attrs.get("keypoint_names", "[]"))
        if names != COCO17_NAMES:
            raise DataError(f"{path}: keypoint_names are not the COCO-17 names in COCO order")
        paths = [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in f["source_path"][()]]
        sha1 = [s.decode("ascii") for s in f["sha1"][()]]
        xy, score, size, detected = f["xy"][()], f["score"][()], f["image_size"][()], f["detected"][()]
        backend = str(f.attrs.get("backend", ""))
        signals = {name: f[name][()] for name in KEYPOINT_SIGNALS if name in f}
        people = f["people"][()] if "people" in f else None
        absolute = ([p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in f["abs_path"][()]]
                    if "abs_path" in f else [None] * len(paths))
    n = len(paths)
    if not (len(sha1) == xy.shape[0] == score.shape[0] == size.shape[0] == detected.shape[0] == len(absolute) == n):
        raise DataError(f"{path}: keypoint datasets have different lengths")
    for name, values in signals.items():
        if values.shape != (n, NUM_KEYPOINTS):
            raise DataError(f"{path}: keypoint dataset '{name}' has shape {values.shape}, expected ({n}, 17)")
    if people is not None and (people.ndim != 3 or people.shape[0] != n or people.shape[2] != PEOPLE_WIDTH):
        raise DataError(f"{path}: keypoint dataset 'people' has shape {people.shape}, expected ({n}, P, 9)")
    entries = {}
    for i, p in enumerate(paths):
        w, h = int(size[i, 0]), int(size[i, 1])
        kp = Keypoints(xy[i], score[i], image_size=(w, h) if w > 0 and h > 0 else None, detected=bool(detected[i]),
                       people=None if people is None else people[i],
                       **{name: values[i] for name, values in signals.items()})
        entries[p] = Entry(sha1[i], kp, absolute[i])
    return entries, backend


def resolve_keypoints_path(path: str | Path) -> Path:
    """``path`` itself if it is a file, else ``path/keypoints.h5`` (so commands accept the annotate folder)."""
    path = Path(path)
    candidate = path / FILENAME if path.is_dir() else path
    if not candidate.is_file():
        raise DataError(f"{candidate}: keypoint file not found (run `opreid-bench annotate` first)")
    return candidate


def read_keypoints(path: str | Path) -> dict[str, Keypoints]:
    """Source path -> Keypoints from a ``keypoints.h5`` file or the folder holding one."""
    entries, _ = read_h5(resolve_keypoints_path(path))
    return {k: e.keypoints for k, e in entries.items()}


class KeypointStore:
    """The resumable keypoint cache of one annotate run in ``out_dir`` (see the module docstring for the layout).

    ``by_path``: the backend's answer depends on the crop's location (``precomputed``), so entries are keyed by
    (absolute path, sha1); otherwise by sha1 alone (the same bytes anywhere give the same keypoints).
    The caller holds the folder's lock (``annotate_pool`` does, through ``opreid_bench.outputs``).
    """

    def __init__(self, out_dir: str | Path, backend: str, *, by_path: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / FILENAME
        self.parts_dir = self.out_dir / (FILENAME + ".parts")
        self.backend = backend
        self.by_path = by_path
        self.entries: dict[str, Entry] = {}  # cache key -> Entry
        self.names: dict[str, str] = {}  # source path as this run spells it -> cache key
        self.stale = 0  # entries made by another backend key (ignored)
        self._next_part = 0
        self._load()

    def key(self, source_path: str, sha1: str, abs_path: str | None = None) -> str:
        """The cache key of a crop: sha1, plus its absolute normalised path for path-dependent backends."""
        if not self.by_path:
            return sha1
        return f"{abs_path or os.path.abspath(source_path)}\0{sha1}"

    def _absorb(self, path: Path) -> None:
        try:
            entries, backend = read_h5(path)
        except DataError as exc:
            print(f"warning: {exc}; deleting it and annotating its crops again", file=sys.stderr)
            path.unlink()
            return
        if backend != self.backend:
            self.stale += len(entries)
            return
        for p, e in entries.items():
            self.entries[self.key(p, e.sha1, e.abs_path)] = e

    def _load(self) -> None:
        if self.path.exists():
            self._absorb(self.path)
        if self.parts_dir.is_dir():
            for part in sorted(self.parts_dir.glob("part-*.h5")):
                self._absorb(part)
                try:
                    self._next_part = max(self._next_part, int(part.stem.split("-")[1]) + 1)
                except ValueError:
                    continue

    def lookup(self, source_path: str, sha1: str) -> Keypoints | None:
        """Cached keypoints of ``source_path`` if an entry with its content hash (and backend key) exists, else None."""
        key = self.key(source_path, sha1)
        entry = self.entries.get(key)
        if entry is None:
            return None
        self.names[source_path] = key
        return entry.keypoints

    def get(self, source_path: str) -> Entry | None:
        """The entry this run found or made for ``source_path`` (None when it has none)."""
        key = self.names.get(source_path)
        return self.entries.get(key) if key is not None else None

    def add_batch(self, batch: dict[str, Entry]) -> None:
        """Add results and flush them to a new part file at once (atomic), so a kill cannot lose them."""
        if not batch:
            return
        for p, e in batch.items():
            e.abs_path = e.abs_path or os.path.abspath(p)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        write_h5(self.parts_dir / f"part-{self._next_part:06d}.h5", batch, self.backend, abs_paths=True)
        self._next_part += 1
        for p, e in batch.items():
            key = self.key(p, e.sha1, e.abs_path)
            self.entries[key] = e
            self.names[p] = key

    def finalize(self, keep: set[str] | None = None) -> Path:
        """Merge this run's crops into ``keypoints.h5`` (only the paths in ``keep``, if given) and delete the parts."""
        names = self.names if keep is None else {p: k for p, k in self.names.items() if p in keep}
        rows = {p: self.entries[k] for p, k in names.items() if k in self.entries}
        rows = {p: Entry(e.sha1, e.keypoints, os.path.abspath(p)) for p, e in rows.items()}
        write_h5(self.path, rows, self.backend, abs_paths=True)
        if self.parts_dir.is_dir():
            shutil.rmtree(self.parts_dir)
        self._next_part = 0
        return self.path
