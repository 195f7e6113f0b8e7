"""The keypoint cache ``keypoints.h5``: COCO-17 keypoints per crop, keyed by source path and content hash.

Layout of ``keypoints.h5`` (one row per crop, rows sorted by ``source_path``; format version 1)::

    attrs:  format = "opreid-keypoints", version = 1, backend = "<backend cache key>",
            keypoint_names = JSON list of the 17 COCO names (the order of the keypoint axis)
    source_path  (N,)        utf-8 string   the crop's path as the pool lists it (the key)
    sha1         (N,)        40-byte ASCII  sha1 of the crop file's bytes (a changed file is annotated again)
    xy           (N, 17, 2)  float32        keypoint x, y in the crop's pixel coordinates
    score        (N, 17)     float32        keypoint score in [0, 1] (meaning: see the backend)
    image_size   (N, 2)      int32          crop width, height
    detected     (N,)        bool           False when the backend found no person

Kill safety: while a run is in progress every flushed batch is its own small file in ``keypoints.h5.parts/``, each
written atomically; a killed run leaves complete parts behind, and the next run loads them and skips what they
hold. At the end all rows are merged into ``keypoints.h5`` (atomic replace, sorted, so an interrupted-and-resumed run
gives the same file as an uninterrupted one) and the parts are deleted.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opreid_bench.atomic import atomic_path
from opreid_bench.errors import DataError
from opreid_bench.splits.keypoints import COCO17_NAMES, NUM_KEYPOINTS, Keypoints

FORMAT = "opreid-keypoints"
VERSION = 1
FILENAME = "keypoints.h5"


@dataclass
class Entry:
    """One cached crop: its content hash and its keypoints."""

    sha1: str
    keypoints: Keypoints


def write_h5(path: str | Path, entries: dict[str, Entry], backend: str) -> None:
    """Write ``entries`` (source path -> Entry) to ``path`` atomically, rows sorted by source path."""
    import h5py

    keys = sorted(entries)
    n = len(keys)
    xy = np.zeros((n, NUM_KEYPOINTS, 2), np.float32)
    score = np.zeros((n, NUM_KEYPOINTS), np.float32)
    size = np.zeros((n, 2), np.int32)
    detected = np.zeros(n, bool)
    for i, k in enumerate(keys):
        kp = entries[k].keypoints
        xy[i], score[i], detected[i] = kp.xy, kp.score, kp.detected
        size[i] = kp.image_size if kp.image_size is not None else (0, 0)
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=False) as f:
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
    n = len(paths)
    if not (len(sha1) == xy.shape[0] == score.shape[0] == size.shape[0] == detected.shape[0] == n):
        raise DataError(f"{path}: keypoint datasets have different lengths")
    entries = {}
    for i, p in enumerate(paths):
        w, h = int(size[i, 0]), int(size[i, 1])
        kp = Keypoints(xy[i], score[i], image_size=(w, h) if w > 0 and h > 0 else None, detected=bool(detected[i]))
        entries[p] = Entry(sha1[i], kp)
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
    """The resumable keypoint cache of one annotate run in ``out_dir`` (see the module docstring for the layout)."""

    def __init__(self, out_dir: str | Path, backend: str) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / FILENAME
        self.parts_dir = self.out_dir / (FILENAME + ".parts")
        self.backend = backend
        self.entries: dict[str, Entry] = {}
        self._next_part = 0
        self._load()

    def _check_backend(self, backend: str, where: Path) -> None:
        if backend != self.backend:
            raise DataError(
                f"{where}: keypoints were made by backend '{backend}', not '{self.backend}'; "
                "use another --out folder (or delete it) to annotate with a different backend"
            )

    def _load(self) -> None:
        if self.path.exists():
            entries, backend = read_h5(self.path)
            self._check_backend(backend, self.path)
            self.entries.update(entries)
        if self.parts_dir.is_dir():
            for part in sorted(self.parts_dir.glob("part-*.h5")):
                entries, backend = read_h5(part)
                self._check_backend(backend, part)
                self.entries.update(entries)
                self._next_part = max(self._next_part, int(part.stem.split("-")[1]) + 1)

    def lookup(self, source_path: str, sha1: str) -> Keypoints | None:
        """Cached keypoints of ``source_path`` if its content hash is unchanged, else None."""
        entry = self.entries.get(source_path)
        return entry.keypoints if entry is not None and entry.sha1 == sha1 else None

    def add_batch(self, batch: dict[str, Entry]) -> None:
        """Add results and flush them to a new part file at once (atomic), so a kill cannot lose them."""
        if not batch:
            return
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        write_h5(self.parts_dir / f"part-{self._next_part:06d}.h5", batch, self.backend)
        self._next_part += 1
        self.entries.update(batch)

    def finalize(self, keep: set[str] | None = None) -> Path:
        """Merge everything into ``keypoints.h5`` (only the paths in ``keep``, if given) and delete the parts."""
        entries = self.entries if keep is None else {k: v for k, v in self.entries.items() if k in keep}
        write_h5(self.path, entries, self.backend)
        if self.parts_dir.is_dir():
            shutil.rmtree(self.parts_dir)
        self._next_part = 0
        return self.path
