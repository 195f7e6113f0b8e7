"""Keypoints computed elsewhere (OpenPose, mmpose, any detector), read from a file: ``precomputed:FILE``.

Accepted files (the format is recognised from the file itself):

- **COCO results JSON** — a list of ``{"image_id": ..., "keypoints": [x, y, s] * 17, "score": ...}`` where
  ``image_id`` is the image's file name or path; or a dict ``{"images": [{"id", "file_name"}], "annotations"|
  "results": [...]}`` mapping numeric ids to file names. With several people per image the one with the highest
  ``score`` (else the highest mean keypoint score) is kept. In ground-truth style annotations the third number is
  COCO's visibility flag (0 unlabelled, 1 labelled but hidden, 2 visible): flag 2 becomes score 1, others 0.
- **OpenPose JSON per image** — a folder of ``<image stem>_keypoints.json`` files (``--write_json``), each with
  ``people[*].pose_keypoints_2d`` in BODY_25 (75 numbers) or COCO-18 (54 numbers) order, mapped to COCO-17 (the
  neck and mid-hip are dropped). The person with the highest mean confidence is kept.
- **CSV** — ``source_path`` and 51 more columns: either named ``<keypoint>_x, <keypoint>_y, <keypoint>_score`` for
  the COCO-17 names (in any order; a file that names some columns so but not all is refused rather than read by
  position), or 51 columns with other names, in COCO order ``x, y, score`` per keypoint.

A crop is matched to an entry by its path as given, then by its path relative to a common root (suffix match), then
by its file name (when that name is unique in the file and the file names no folder for it: an entry for
``cam_a/0001.png`` is never used for ``cam_b/0001.png``). A crop with no entry is skipped and listed in the report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from opreid_bench.errors import DataError
from opreid_bench.splits.keypoints import COCO17_NAMES, NUM_KEYPOINTS, Keypoints
from opreid_bench.splits.pose_backends.base import POSE_BACKENDS, PoseBackend

# OpenPose part index of each COCO-17 keypoint.
BODY25_TO_COCO17: list[int] = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
COCO18_TO_COCO17: list[int] = [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]


def _norm(path: str) -> str:
    """A path as keys compare: posix separators, without leading ``./``, ``../`` and ``/`` (a hidden name such as
    ``.cam/a.png`` keeps its dot)."""
    return re.sub(r"^(?:\.{1,2}/|/)+", "", Path(path).as_posix())


def _numbers(value: Any, where: str, what: str) -> np.ndarray:
    """``value`` as a flat float32 array of finite numbers; a DataError naming ``where`` and ``what`` otherwise."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise DataError(f"{where}: {what} must be a list of numbers, got {value!r:.60}")
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what} must be a list of numbers, got {value!r:.60}") from None
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise DataError(f"{where}: {what} must be a flat list of finite numbers, got {value!r:.60}")
    return arr


def openpose_to_coco17(flat: list[float], where: str) -> np.ndarray:
    """(17, 3) COCO-17 ``x, y, score`` from OpenPose's flat BODY_25 (75) or COCO-18 (54) list."""
    arr = _numbers(flat, where, "pose_keypoints_2d")
    if arr.size == 75:
        mapping = BODY25_TO_COCO17
    elif arr.size == 54:
        mapping = COCO18_TO_COCO17
    else:
        raise DataError(f"{where}: pose_keypoints_2d has {arr.size} numbers; expected 75 (BODY_25) or 54 (COCO-18)")
    return arr.reshape(-1, 3)[mapping]


def _read_coco_json(path: Path) -> dict[str, np.ndarray]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    id_to_name: dict[Any, str] = {}
    visibility_flags = False
    if isinstance(data, dict):
        images = data.get("images", [])
        if not isinstance(images, list):
            raise DataError(f"{path}: 'images' must be a list of {{id, file_name}} entries")
        for i, img in enumerate(images):
            if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
                raise DataError(f"{path}: images[{i}] must have an id and a file_name (text), got {img!r:.80}")
            if not isinstance(img["id"], (int, str)) or isinstance(img["id"], bool):
                raise DataError(f"{path}: images[{i}].id must be a number or text, got {img['id']!r:.40}")
            id_to_name[img["id"]] = img["file_name"]
        if "annotations" in data:
            entries, visibility_flags = data["annotations"], True
        else:
            entries = data.get("results", [])
    elif isinstance(data, list):
        entries = data
    else:
        raise DataError(f"{path}: expected a COCO results list or a dict with images/annotations")
    if not isinstance(entries, list):
        raise DataError(f"{path}: the keypoint entries must be a list, got {type(entries).__name__}")
    best: dict[str, tuple[float, np.ndarray]] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "keypoints" not in entry or "image_id" not in entry:
            raise DataError(f"{path}: entry {i} lacks image_id or keypoints")
        image_id = entry["image_id"]
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            raise DataError(f"{path}: entry {i} has image_id {image_id!r:.40}; expected a file name or a number")
        name = id_to_name.get(image_id, image_id if isinstance(image_id, str) else None)
        if name is None:
            raise DataError(f"{path}: entry {i} has numeric image_id {image_id} but no images[] entry names its file")
        kp = _numbers(entry["keypoints"], f"{path}: entry {i}", "keypoints")
        if kp.size != 3 * NUM_KEYPOINTS:
            raise DataError(f"{path}: entry {i} has {kp.size} keypoint numbers; expected 51 (COCO-17 x, y, score)")
        kp = kp.reshape(NUM_KEYPOINTS, 3).copy()
        if visibility_flags:
            kp[:, 2] = (kp[:, 2] >= 2).astype(np.float32)
        score = entry.get("score", float(kp[:, 2].mean()))
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score):
            raise DataError(f"{path}: entry {i} has score {score!r:.40}; expected a number")
        rank = float(score)
        key = _norm(str(name))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, kp)
    return {k: v for k, (_, v) in best.items()}


def _read_openpose_dir(path: Path) -> dict[str, np.ndarray]:
    files = sorted(path.rglob("*_keypoints.json"))
    if not files:
        raise DataError(f"{path}: folder holds no OpenPose '*_keypoints.json' files")
    out: dict[str, np.ndarray] = {}
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
            raise DataError(f"{f}: not a readable OpenPose JSON file ({exc})") from None
        stem = f.name[: -len("_keypoints.json")]
        key = _norm(str(f.parent.relative_to(path) / stem))
        found = data.get("people", []) if isinstance(data, dict) else None
        if not isinstance(found, list) or not all(isinstance(p, dict) for p in found):
            raise DataError(f"{f}: expected an OpenPose object with a 'people' list of objects")
        people = [openpose_to_coco17(p.get("pose_keypoints_2d", []), str(f)) for p in found]
        if people:
            out[key] = max(people, key=lambda kp: float(kp[:, 2].mean()))
        else:
            out[key] = np.zeros((NUM_KEYPOINTS, 3), np.float32)  # OpenPose found nobody: every keypoint missing
    return out


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for bad CSVs
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if "source_path" not in df.columns:
        raise DataError(f"{path}: CSV needs a 'source_path' column and 51 keypoint columns")
    named = [f"{n}_{c}" for n in COCO17_NAMES for c in ("x", "y", "score")]
    present = [c for c in named if c in df.columns]
    if len(present) == len(named):
        cols = named
    elif present:  # named columns with some names wrong: reading by position would put points on the wrong joints
        unknown = [c for c in df.columns if c != "source_path" and c not in named]
        missing = [c for c in named if c not in df.columns]
        raise DataError(
            f"{path}: keypoint column(s) {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} missing"
            + (f" and {', '.join(map(str, unknown[:3]))} not a keypoint name" if unknown else "")
            + " (named columns must be <keypoint>_x, <keypoint>_y, <keypoint>_score for every COCO-17 keypoint)"
        )
    else:
        cols = [c for c in df.columns if c != "source_path"]
        if len(cols) != 3 * NUM_KEYPOINTS:
            raise DataError(
                f"{path}: CSV has {len(cols)} keypoint columns; expected 51 (x, y, score per COCO-17 keypoint) "
                "or columns named like nose_x, nose_y, nose_score"
            )
    table = df[cols].apply(pd.to_numeric, errors="coerce")
    bad = table.notna().to_numpy() != df[cols].notna().to_numpy()  # text where a number belongs
    values = table.to_numpy(dtype=np.float32, na_value=0.0)
    if bad.any() or not np.isfinite(values).all():
        r, c = (int(v) for v in np.argwhere(bad | ~np.isfinite(values))[0])
        raise DataError(f"{path}: row {r + 2}, column {cols[c]}: {df[cols].iat[r, c]!r} is not a finite number")
    values = values.reshape(len(df), NUM_KEYPOINTS, 3)
    return {_norm(str(p)): values[i] for i, p in enumerate(df["source_path"].astype(str))}


def read_precomputed(path: str | Path) -> dict[str, np.ndarray]:
    """Read a keypoint file (format recognised from it) into ``normalised name -> (17, 3) x, y, score``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: precomputed keypoint file or folder does not exist")
    if path.is_dir():
        return _read_openpose_dir(path)
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    return _read_coco_json(path)


@POSE_BACKENDS.register("precomputed")
class PrecomputedPose(PoseBackend):
    """Looks crops up in a keypoint file instead of running a model (scores are the file's, clipped to [0, 1])."""

    name = "precomputed"
    keyed_by_path = True  # crops are looked up by path

    def __init__(self, file: str | Path) -> None:
        self.file = Path(file)
        self._table = read_precomputed(self.file)
        self._digest: str | None = None
        self._by_name: dict[str, list[str]] = {}
        self._by_stem: dict[str, list[str]] = {}
        for key in self._table:
            self._by_name.setdefault(Path(key).name, []).append(key)
            self._by_stem.setdefault(Path(key).stem, []).append(key)

    @classmethod
    def from_arg(cls, arg: str | None) -> PrecomputedPose:
        if not arg:
            from opreid_bench.errors import OpreidError

            raise OpreidError("precomputed pose backend needs a file: --pose precomputed:FILE")
        return cls(arg)

    @property
    def cache_key(self) -> str:
        if self._digest is None:  # the file's content, not its path: an edited file invalidates the cache
            from opreid_bench.outputs import content_digest

            self._digest = content_digest(self.file)
        return f"precomputed:sha256={self._digest}"

    def lookup(self, source_path: str) -> np.ndarray | None:
        """The (17, 3) entry for ``source_path`` (exact path, then suffix match, then a unique file name that the
        file gives without folders), or None. An entry whose folders contradict the crop's is never used: two camera
        folders often hold the same file name for different people."""
        key = _norm(source_path)
        if key in self._table:
            return self._table[key]
        p = Path(key)
        for index, probe, full in ((self._by_name, p.name, key), (self._by_stem, p.stem, str(p.with_suffix("")))):
            candidates = index.get(probe, [])
            suffix = [k for k in candidates if full.endswith("/" + k) or k.endswith("/" + full)]
            if len(suffix) == 1:
                return self._table[suffix[0]]
            if len(candidates) == 1 and "/" not in candidates[0]:
                return self._table[candidates[0]]
        return None

    def predict(self, image: np.ndarray, source_path: str) -> Keypoints | None:
        entry = self.lookup(source_path)
        if entry is None:
            return None
        h, w = image.shape[:2]
        detected = bool(np.any(entry[:, 2] > 0))
        return Keypoints(entry[:, :2], entry[:, 2], image_size=(w, h), detected=detected)
