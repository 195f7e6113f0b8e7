"""COCO-17 keypoints of one person crop: the common currency of every pose backend, the cache and the classifier."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The 17 COCO keypoints in COCO order (index = position in the arrays below).
COCO17_NAMES: list[str] = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]
COCO17_INDEX: dict[str, int] = {name: i for i, name in enumerate(COCO17_NAMES)}
NUM_KEYPOINTS = len(COCO17_NAMES)
PEOPLE_WIDTH = 9  # numbers per detected person in ``Keypoints.people`` (opreid_bench.splits.people.PEOPLE_COLUMNS)

# COCO's own skeleton (pairs of names), used to draw keypoints on contact sheets.
COCO17_SKELETON: list[tuple[str, str]] = [
    ("left_ankle", "left_knee"),
    ("left_knee", "left_hip"),
    ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist"),
    ("left_eye", "right_eye"),
    ("nose", "left_eye"),
    ("nose", "right_eye"),
    ("left_eye", "left_ear"),
    ("right_eye", "right_ear"),
]


@dataclass
class Keypoints:
    """COCO-17 keypoints of one crop.

    ``xy`` is (17, 2) float32 in the crop's pixel coordinates (x right, y down; may lie outside the crop when a
    backend extrapolates), ``score`` is (17,) float32 in [0, 1] (what it means depends on the backend; each backend
    documents it). ``image_size`` is the crop's (width, height) when known, so that a rule can treat keypoints
    predicted outside the crop as not visible. ``detected`` is False when the backend found no person at all
    (then every score is 0).

    ``support`` (optional, (17,) float32 in [0, 1], NaN where unknown) is a second, independent occlusion signal:
    how strongly the backend's *person segmentation* covers the pixels under the keypoint. A pose model places
    hidden joints where the body should be, often with a confident score, but on top of the occluder; the
    segmentation of the person does not cover the occluder there, so ``support`` drops. Backends without a
    segmentation leave it ``None`` (the rule then uses the score alone).

    ``people`` (optional, (P, 9) float32) are the people a person *detector* found in the crop, the main person among
    them, one row each in the layout of :data:`opreid_bench.splits.people.PEOPLE_COLUMNS` (score, hip centre, the
    point of the full-body circle above the head, shoulder centre, the point of the upper-body circle), in the crop's
    pixels. They tell where the main person's body continues beyond the crop's border and who stands in front of it
    (:mod:`opreid_bench.splits.people`). ``None``: the backend has no detector; an empty (0, 9) array: it ran and
    found nobody.

    ``flip_shift`` (optional, (17,) float32 >= 0, NaN where unknown) is how far each keypoint lies from where the
    backend places it on the crop's mirror image (left and right swapped back), in crop heights. A joint the model
    sees lands at the same place in both; a joint it guesses (hidden, or beyond a cut border) often does not. The
    mediapipe backend measures it with ``flip=1``; ``None``: not measured.
    """

    xy: np.ndarray
    score: np.ndarray
    image_size: tuple[int, int] | None = None
    detected: bool = field(default=True)
    support: np.ndarray | None = None
    people: np.ndarray | None = None
    flip_shift: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float32).reshape(NUM_KEYPOINTS, 2)
        score = np.asarray(self.score, dtype=np.float32).reshape(NUM_KEYPOINTS)
        self.score = np.clip(np.nan_to_num(score, nan=0.0), 0.0, 1.0).astype(np.float32)
        if self.image_size is not None:
            self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.support is not None:
            sup = np.asarray(self.support, dtype=np.float32).reshape(NUM_KEYPOINTS)
            self.support = np.where(np.isnan(sup), np.nan, np.clip(sup, 0.0, 1.0)).astype(np.float32)
            if np.isnan(self.support).all():
                self.support = None
        if self.flip_shift is not None:
            shift = np.asarray(self.flip_shift, dtype=np.float32).reshape(NUM_KEYPOINTS)
            self.flip_shift = np.where(np.isnan(shift), np.nan, np.maximum(shift, 0.0)).astype(np.float32)
            if np.isnan(self.flip_shift).all():
                self.flip_shift = None
        if self.people is not None:
            people = np.asarray(self.people, dtype=np.float32).reshape(-1, PEOPLE_WIDTH)
            self.people = people[~np.isnan(people).any(axis=1)]

    @classmethod
    def empty(cls, image_size: tuple[int, int] | None = None) -> Keypoints:
        """No person found: zeros everywhere, ``detected=False``."""
        return cls(np.zeros((NUM_KEYPOINTS, 2)), np.zeros(NUM_KEYPOINTS), image_size=image_size, detected=False)

    @classmethod
    def from_flat(cls, values: list[float] | np.ndarray, image_size: tuple[int, int] | None = None) -> Keypoints:
        """Build from COCO's flat ``[x1, y1, s1, ..., x17, y17, s17]`` (51 numbers)."""
        arr = np.asarray(values, dtype=np.float32)
        if arr.size != 3 * NUM_KEYPOINTS:
            raise ValueError(f"expected {3 * NUM_KEYPOINTS} numbers (x, y, score per COCO-17 keypoint), got {arr.size}")
        arr = arr.reshape(NUM_KEYPOINTS, 3)
        return cls(arr[:, :2], arr[:, 2], image_size=image_size)

    def inside(self, margin: float = 0.0) -> np.ndarray:
        """(17,) bool: the keypoint lies inside the crop, grown by ``margin`` (a fraction of width/height).

        All True when the crop size is unknown.
        """
        if self.image_size is None:
            return np.ones(NUM_KEYPOINTS, dtype=bool)
        w, h = self.image_size
        mx, my = margin * w, margin * h
        x, y = self.xy[:, 0], self.xy[:, 1]
        return (x >= -mx) & (x <= w + mx) & (y >= -my) & (y <= h + my)

    def to_flat(self) -> list[float]:
        """COCO's flat ``[x, y, score] * 17`` list (what the precomputed backends read back)."""
        return np.concatenate([self.xy, self.score[:, None]], axis=1).reshape(-1).astype(float).tolist()


# Optional per-keypoint signals of :class:`Keypoints` (NaN where unknown; a file or batch without the column: unknown).
KEYPOINT_SIGNALS = ("support", "flip_shift")


def stack_signal(kps: list[Keypoints | None], name: str) -> np.ndarray:
    """One optional per-keypoint signal (:data:`KEYPOINT_SIGNALS`) of many crops as (N, 17), NaN where unknown."""
    out = np.full((len(kps), NUM_KEYPOINTS), np.nan, np.float32)
    for i, kp in enumerate(kps):
        value = None if kp is None else getattr(kp, name)
        if value is not None:
            out[i] = value
    return out
