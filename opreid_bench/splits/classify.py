"""Stage 2 of build-split: is a crop occluded, holistic, or undetermined? The paper's rule on pose keypoints.

Paper (Section 4): "The images that miss at least three sequential key-points are then considered as occluded."

Definitions used here:

- A keypoint is **missing** when its score is below ``score_threshold``, or (``outside_margin`` not None) when it
  lies outside the crop grown by that margin (a backend may extrapolate a cut-off body part into the padding), or
  (``support_threshold`` not None, and the backend measured it) when its person-segmentation ``support`` is below
  that threshold: the joint was placed on something that is not the person, i.e. on the occluder. Two more signals
  come from the person detector where the backend ran one (``Keypoints.people``; :mod:`opreid_bench.splits.people`):
  (``cut_margin`` not None) the keypoint would lie more than that margin beyond the crop's border by the detected
  body's alignment, though the pose model squeezed it inside (a body cut mid-thigh, a head cut at the top: a partial
  crop is an occluded crop, as with the paper's OpenPose); (``people_cover``) it falls inside the body of another
  person standing in front of the main one. One more where the backend measured it (``Keypoints.flip_shift``; the
  mediapipe backend with ``flip=1``): (``flip_threshold`` not None) the keypoint lies more than that share of the
  crop's height from where the pose model places it on the crop's mirror image: a joint it sees does not move, a
  joint it guesses often does. The support signal
  exists because pose models score hidden joints as visible far too often (``Keypoints.support``; the mediapipe
  backend measures it by default, lowered by BlazePose's presence and, for knees and ankles, by the mask along the
  limb: ``pose_backends.mediapipe.occlusion_support``). It counts only on crops at least ``support_min_height``
  pixels high (128): the segmentation of a smaller crop is too coarse to tell a thin limb from the background, and
  held out it made small holistic crops "occluded".
- **Sequential** means consecutive along a body chain: an ordered list of adjacent COCO-17 joints. A crop is
  occluded when some chain holds a run of at least ``min_missing_run`` (3) consecutive missing keypoints. The
  longest run is recorded (``missing_run``) and drawn on the review sheet: it is why the crop is occluded.
- **Undetermined**: the backend found no person. That is not evidence of occlusion (small, blurry crops fail the
  detector too), so such crops get their own label, are listed for review and are left out of sampling unless the
  user decides (``--corrections`` per crop, or ``--undetermined occluded|holistic`` for all of them).
- **Back views**: a person seen from behind shows no eyes and no nose, which would make the head chain
  ``left_ear-left_eye-nose-right_eye-right_ear`` a run of 3. When both shoulders are visible and in back-view order
  (the person's left shoulder on the image's left) and at least two face points are missing, the face points are
  not counted missing (``back_view``). With BlazePose's visibility (mediapipe backend) the face points of back views
  score high anyway, so on the benchmark's holistic crops the exemption changes nothing measurable
  (``false_occluded_by_scale_without_back_view_rule`` in ``benchmarks/bench_occlusion.py``); it is there for
  backends whose face scores do drop on back views (OpenPose, mmpose).
- Default chains (``body``): the head; each arm ``shoulder-elbow-wrist``; each side ``shoulder-hip-knee-ankle``; and
  the lower body across both legs ``left_ankle-left_knee-right_knee-right_ankle``. That last chain is not
  anatomically sequential; it is kept because an identity-disjoint held-out evaluation shows it is what finds lower-
  body occlusion: BlazePose scores the hips as visible almost always (they anchor its body model), so no chain
  through a hip ever holds 3 missing in a row. Held out (5 identity-disjoint folds over the labelled sets, thresholds
  chosen on training folds): balanced accuracy on Partial-REID occluded vs whole 0.84 with it, 0.79 without
  (``anatomical``, the same chains minus the cross-knee one). ``limbs`` (head, arms, legs
  ``hip-knee-ankle``, torso ``shoulder-hip``) and ``coco_order`` (one chain over the 17 keypoints in COCO index
  order, the literal reading) stay selectable.
- Defaults, score threshold 0.74, support threshold 0.80, support only on crops at least 128 px high: what the
  leave-one-dataset-out procedure of ``benchmarks/bench_occlusion.py`` picks with every labelled set in view
  (Partial-REID, CUHK03, GRID, PRID 2011, VIPeR; hand labels in ``benchmarks/labels/``), the people signals on. Its
  held-out numbers, one set left out at a time, are in docs/concepts/occlusion-rule.md: the rule holds on Partial-REID and CUHK03 and
  fails on the low-resolution sets (GRID, PRID 2011, VIPeR), where BlazePose's visibility and segmentation do not
  separate occluded from holistic crops at any threshold. The cut margin (0.1) and the people cover are part of the
  rule's definition, not tuned by that procedure (the margin was picked with Partial-REID's partial crops in view).

Per crop we record the label, the missing keypoints, the longest missing run (length and names), the visible fraction
(share of the 17 keypoints not missing), whether the back-view exemption applied, and the label's **stability**: the
share of the threshold settings that give the same label (:func:`label_stability`). The review sheet shows the
least stable labels first (:func:`review_order`), because that is where the rule's errors gather. ``--corrections``
applies the hand-checked labels (the paper checked its labels by hand) from a CSV ``source_path,occluded``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from opreid_bench.errors import DataError, OpreidError
from opreid_bench.splits.keypoints import COCO17_INDEX, COCO17_NAMES, NUM_KEYPOINTS, Keypoints, stack_signal
from opreid_bench.splits.people import beyond_border, covered_by_people

if TYPE_CHECKING:
    import pandas as pd

HEAD = ("left_ear", "left_eye", "nose", "right_eye", "right_ear")
FACE = ("left_eye", "nose", "right_eye")  # not expected visible on a person seen from behind
LEFT_ARM = ("left_shoulder", "left_elbow", "left_wrist")
RIGHT_ARM = ("right_shoulder", "right_elbow", "right_wrist")
LEFT_SIDE = ("left_shoulder", "left_hip", "left_knee", "left_ankle")
RIGHT_SIDE = ("right_shoulder", "right_hip", "right_knee", "right_ankle")
CROSS_KNEE = ("left_ankle", "left_knee", "right_knee", "right_ankle")

CHAIN_PRESETS: dict[str, tuple[tuple[str, ...], ...]] = {
    "body": (HEAD, LEFT_ARM, RIGHT_ARM, LEFT_SIDE, RIGHT_SIDE, CROSS_KNEE),
    "anatomical": (HEAD, LEFT_ARM, RIGHT_ARM, LEFT_SIDE, RIGHT_SIDE),
    "limbs": (
        HEAD,
        LEFT_ARM,
        RIGHT_ARM,
        ("left_hip", "left_knee", "left_ankle"),
        ("right_hip", "right_knee", "right_ankle"),
        ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"),
    ),
    "coco_order": (tuple(COCO17_NAMES),),
}
DEFAULT_CHAINS = "body"
# Chosen by benchmarks/bench_occlusion.py: the leave-one-dataset-out procedure's choice with every labelled set in
# view (benchmarks/labels/); see the module docstring.
DEFAULT_SCORE_THRESHOLD = 0.74
DEFAULT_SUPPORT_THRESHOLD: float | None = 0.8
DEFAULT_SUPPORT_MIN_HEIGHT = 128  # px; the support signal is ignored on smaller crops (module docstring)
DEFAULT_MIN_MISSING_RUN = 3  # the paper's "at least three sequential key-points"
DEFAULT_OUTSIDE_MARGIN = 0.05
# A keypoint whose place by the detected body's alignment lies more than 10% of the crop's height (or width) beyond
# its border is cut off. Part of the rule's definition (a partial crop is an occluded crop), not tuned by the
# leave-one-dataset-out procedure; 0.1 rather than 0.05 or 0.2 was picked with Partial-REID's partial crops in view.
DEFAULT_CUT_MARGIN: float | None = 0.1
DEFAULT_PEOPLE_COVER = True
# A keypoint that moves more than 5% of the crop's height between the crop and its mirror image is missing (where the
# backend measured it: mediapipe with flip=1). The leave-one-dataset-out procedure of benchmarks/bench_occlusion.py
# --pose mediapipe:flip=1 chose 0.05 with every labelled set in view and on four of its five folds (2026-12-07,
# opreid-bench 0.2.0).
DEFAULT_FLIP_THRESHOLD: float | None = 0.05

# The rule settings a label's stability is measured over (:func:`label_stability`): the threshold grid that
# benchmarks/bench_occlusion.py's leave-one-dataset-out procedure searches.
STABILITY_SCORE_THRESHOLDS = tuple(round(0.30 + 0.04 * i, 2) for i in range(17))
STABILITY_SUPPORT_THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)
STABILITY_SUPPORT_HEIGHTS = (0, 64, 96, 128)
# Mirror-consistency thresholds (in crop heights; None = the signal off), varied where the keypoints carry the signal.
STABILITY_FLIP_THRESHOLDS: tuple[float | None, ...] = (None, 0.03, 0.05, 0.08, 0.12, 0.2)
# A label with stability below this is *unstable*: a quarter or more of the settings above give the other label. The
# data card counts the unstable labels no one checked by hand (:func:`label_reliability`).
UNSTABLE_BELOW = 0.75
# Who decided a label (``label_source``): the rule, a hand correction, or the ``--undetermined`` policy.
LABEL_SOURCES = ("rule", "hand", "policy")

LABELS = ("occluded", "holistic", "undetermined")
LABEL_COLUMNS = [
    "source_path",
    "occluded",
    "label",
    "missing_keypoints",
    "longest_missing_run",
    "visible_fraction",
    "missing_run",
    "back_view",
    "label_stability",
    "label_source",
]


def resolve_chains(chains: str | tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    """A preset name (``body``, ``anatomical``, ``limbs``, ``coco_order``) or explicit chains -> validated chains."""
    if isinstance(chains, str):
        if chains not in CHAIN_PRESETS:
            raise OpreidError(f"unknown chain preset '{chains}'; known: {', '.join(CHAIN_PRESETS)}")
        return CHAIN_PRESETS[chains]
    out = tuple(tuple(c) for c in chains)
    for chain in out:
        bad = [n for n in chain if n not in COCO17_INDEX]
        if bad:
            raise OpreidError(f"unknown keypoint name(s) in chain {list(chain)}: {', '.join(bad)}")
    return out


_FACE_IDX = np.array([COCO17_INDEX[n] for n in FACE], int)
_LS, _RS = COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]


@dataclass
class OcclusionRule:
    """The occluded-or-holistic rule: threshold, run length, chains and the back-view exemption (module docstring)."""

    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    min_missing_run: int = DEFAULT_MIN_MISSING_RUN
    chains: str | tuple[tuple[str, ...], ...] = DEFAULT_CHAINS
    outside_margin: float | None = DEFAULT_OUTSIDE_MARGIN
    back_view: bool = True
    support_threshold: float | None = DEFAULT_SUPPORT_THRESHOLD
    support_min_height: int = DEFAULT_SUPPORT_MIN_HEIGHT
    cut_margin: float | None = DEFAULT_CUT_MARGIN
    people_cover: bool = DEFAULT_PEOPLE_COVER
    flip_threshold: float | None = DEFAULT_FLIP_THRESHOLD
    _chain_idx: list[np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise OpreidError(f"score threshold must be in [0, 1], got {self.score_threshold}")
        if self.support_threshold is not None and not 0.0 <= self.support_threshold <= 1.0:
            raise OpreidError(f"support threshold must be in [0, 1], got {self.support_threshold}")
        if self.support_min_height < 0:
            raise OpreidError(f"support min height must be >= 0, got {self.support_min_height}")
        if self.cut_margin is not None and not -0.5 <= self.cut_margin <= 2.0:
            raise OpreidError(f"cut margin must be in [-0.5, 2], got {self.cut_margin}")
        if self.flip_threshold is not None and not 0.0 <= self.flip_threshold <= 2.0:
            raise OpreidError(f"flip threshold must be in [0, 2], got {self.flip_threshold}")
        if self.min_missing_run < 1:
            raise OpreidError(f"min missing run must be >= 1, got {self.min_missing_run}")
        self._chain_idx = [np.array([COCO17_INDEX[n] for n in c], int) for c in resolve_chains(self.chains)]

    def raw_missing(self, kp: Keypoints) -> np.ndarray:
        """(17,) bool: score below the threshold, (``outside_margin``) outside the grown crop, (``support_threshold``)
        person-segmentation support below that threshold where the backend measured it, (``cut_margin``) beyond the
        crop's border by the detected body's alignment, (``people_cover``) behind another person in front, or
        (``flip_threshold``) moved more than that between the crop and its mirror image where the backend measured
        it."""
        missing = kp.score < self.score_threshold
        if self.support_threshold is not None and kp.support is not None and self._support_counts(kp.image_size):
            with np.errstate(invalid="ignore"):
                missing |= kp.support < self.support_threshold  # NaN (unknown) compares False
        if self.outside_margin is not None:
            missing |= ~kp.inside(self.outside_margin)
        if self.cut_margin is not None and kp.people is not None:
            with np.errstate(invalid="ignore"):
                missing |= beyond_border(kp) > self.cut_margin  # NaN (unknown) compares False
        if self.people_cover and kp.people is not None:
            missing |= covered_by_people(kp)
        if self.flip_threshold is not None and kp.flip_shift is not None:
            with np.errstate(invalid="ignore"):
                missing |= kp.flip_shift > self.flip_threshold  # NaN (unknown) compares False
        if not kp.detected:
            missing[:] = True
        return missing

    def _support_counts(self, image_size: tuple[int, int] | None) -> bool:
        """The support signal counts on this crop: its height is known and at least ``support_min_height``."""
        if self.support_min_height <= 0:
            return True
        return image_size is not None and image_size[1] >= self.support_min_height

    def is_back_view(self, kp: Keypoints, missing: np.ndarray | None = None) -> bool:
        """Seen from behind: both shoulders visible, in back-view order (the person's left shoulder on the image's
        left), and at least two of the face points (eyes, nose) missing."""
        if not kp.detected:
            return False
        missing = self.raw_missing(kp) if missing is None else missing
        if missing[_LS] or missing[_RS]:
            return False
        return bool(kp.xy[_LS, 0] < kp.xy[_RS, 0]) and int(missing[_FACE_IDX].sum()) >= 2

    def missing_mask(self, kp: Keypoints) -> np.ndarray:
        """(17,) bool: which keypoints count as missing under this rule (face points of a back view do not)."""
        missing = self.raw_missing(kp)
        if self.back_view and self.is_back_view(kp, missing):
            missing[_FACE_IDX] = False
        return missing

    def longest_run(self, missing: np.ndarray) -> int:
        """Longest run of consecutive missing keypoints along any chain."""
        return len(self.longest_run_names(missing))

    def longest_run_names(self, missing: np.ndarray) -> list[str]:
        """The keypoints of the longest missing run along any chain (first such run on ties)."""
        best: list[int] = []
        for idx in self._chain_idx:
            run: list[int] = []
            for i in idx:
                run = [*run, int(i)] if missing[i] else []
                if len(run) > len(best):
                    best = run
        return [COCO17_NAMES[i] for i in best]


@dataclass
class OcclusionLabel:
    """The label of one crop and why."""

    occluded: bool
    missing_keypoints: list[str]
    longest_missing_run: int
    visible_fraction: float
    undetermined: bool = False
    missing_run: list[str] = field(default_factory=list)
    back_view: bool = False

    @property
    def label(self) -> str:
        """``occluded``, ``holistic`` or ``undetermined`` (no person found)."""
        return "undetermined" if self.undetermined else ("occluded" if self.occluded else "holistic")


def classify_keypoints(kp: Keypoints, rule: OcclusionRule) -> OcclusionLabel:
    """Occluded when at least ``rule.min_missing_run`` sequential keypoints are missing (paper Section 4).

    A crop where the backend found no person is *undetermined* (``occluded`` False): no person found is not
    evidence of occlusion, so such crops are listed for review and left out of sampling.
    """
    missing = rule.missing_mask(kp)
    if not kp.detected:
        return OcclusionLabel(False, list(COCO17_NAMES), len(COCO17_NAMES), 0.0, undetermined=True)
    run = rule.longest_run_names(missing)
    return OcclusionLabel(
        occluded=len(run) >= rule.min_missing_run,
        missing_keypoints=[COCO17_NAMES[i] for i in np.flatnonzero(missing)],
        longest_missing_run=len(run),
        visible_fraction=round(float(1.0 - missing.mean()), 4),
        missing_run=run,
        back_view=rule.back_view and rule.is_back_view(kp),
    )


@dataclass
class KeypointArrays:
    """Many crops' keypoints as arrays, so one rule labels a whole pool at once (:func:`label_codes`)."""

    xy: np.ndarray  # (N, 17, 2)
    score: np.ndarray  # (N, 17)
    support: np.ndarray  # (N, 17), NaN where unknown
    size: np.ndarray  # (N, 2) width, height; 0 where unknown
    detected: np.ndarray  # (N,)
    beyond: np.ndarray | None = None  # (N, 17) people.beyond_border, NaN where unknown
    covered: np.ndarray | None = None  # (N, 17) people.covered_by_people
    flip_shift: np.ndarray | None = None  # (N, 17) Keypoints.flip_shift, NaN where unknown; None: no crop has it

    @classmethod
    def stack(cls, kps: list[Keypoints]) -> KeypointArrays:
        n = len(kps)
        support = stack_signal(list(kps), "support")
        size = np.zeros((n, 2), np.int64)
        for i, kp in enumerate(kps):
            if kp.image_size is not None:
                size[i] = kp.image_size
        beyond = np.full((n, NUM_KEYPOINTS), np.nan, np.float32)
        covered = np.zeros((n, NUM_KEYPOINTS), bool)
        for i, kp in enumerate(kps):
            if kp.people is not None:
                beyond[i], covered[i] = beyond_border(kp), covered_by_people(kp)
        flip = stack_signal(list(kps), "flip_shift")
        return cls(np.stack([kp.xy for kp in kps]) if n else np.zeros((0, 17, 2), np.float32),
                   np.stack([kp.score for kp in kps]) if n else np.zeros((0, 17), np.float32), support, size,
                   np.array([kp.detected for kp in kps], bool), beyond, covered,
                   None if np.isnan(flip).all() else flip)


def label_codes(arrays: KeypointArrays, rule: OcclusionRule) -> np.ndarray:
    """Per crop 1 (occluded), 0 (holistic) or 2 (undetermined): :func:`classify_keypoints`'s verdict for a whole
    pool at once (the benchmark's threshold grid needs thousands of them; a test holds the two equal)."""
    a = arrays
    missing = a.score < rule.score_threshold
    known = (a.size > 0).all(axis=1)
    if rule.outside_margin is not None:
        w, h = a.size[:, 0:1].astype(np.float32), a.size[:, 1:2].astype(np.float32)
        mx, my = rule.outside_margin * w, rule.outside_margin * h
        x, y = a.xy[..., 0], a.xy[..., 1]
        inside = (x >= -mx) & (x <= w + mx) & (y >= -my) & (y <= h + my)
        missing |= ~inside & known[:, None]
    if rule.support_threshold is not None:
        counts = (a.size[:, 1] >= rule.support_min_height) & known if rule.support_min_height > 0 else np.ones(
            len(missing), bool)
        with np.errstate(invalid="ignore"):
            missing |= (a.support < rule.support_threshold) & counts[:, None]
    if rule.cut_margin is not None and a.beyond is not None:
        with np.errstate(invalid="ignore"):
            missing |= a.beyond > rule.cut_margin
    if rule.people_cover and a.covered is not None:
        missing |= a.covered
    if rule.flip_threshold is not None and a.flip_shift is not None:
        with np.errstate(invalid="ignore"):
            missing |= a.flip_shift > rule.flip_threshold
    missing[~a.detected] = True
    if rule.back_view:
        back = (a.detected & ~missing[:, _LS] & ~missing[:, _RS] & (a.xy[:, _LS, 0] < a.xy[:, _RS, 0])
                & (missing[:, _FACE_IDX].sum(axis=1) >= 2))
        missing[np.ix_(back, _FACE_IDX)] = False
    longest = np.zeros(len(missing), np.int64)
    for idx in rule._chain_idx:
        run = np.zeros(len(missing), np.int64)
        for i in idx:
            run = np.where(missing[:, i], run + 1, 0)
            longest = np.maximum(longest, run)
    codes = (longest >= rule.min_missing_run).astype(np.int8)
    codes[~a.detected] = 2
    return codes


def stability_settings(rule: OcclusionRule, flip: bool = False) -> list[OcclusionRule]:
    """The rules a label's stability is measured over: ``rule`` with its score threshold, (when ``rule`` uses
    person-segmentation support) its support threshold and minimum height, and (``flip``: the keypoints carry the
    mirror signal and ``rule`` counts it) its flip threshold, taken from the benchmark's search grid
    (``STABILITY_*``); chains, run length and the people signals stay the rule's own."""
    supports: list[tuple[float | None, int]] = [(None, 0)]
    if rule.support_threshold is not None:
        supports += [(s, h) for s in STABILITY_SUPPORT_THRESHOLDS for h in STABILITY_SUPPORT_HEIGHTS]
    flips = STABILITY_FLIP_THRESHOLDS if flip and rule.flip_threshold is not None else (rule.flip_threshold,)
    return [replace(rule, score_threshold=t, support_threshold=s, support_min_height=h, flip_threshold=f)
            for f in flips for t in STABILITY_SCORE_THRESHOLDS for s, h in supports]


def label_stability(arrays: KeypointArrays, rule: OcclusionRule) -> np.ndarray:
    """Per crop, the share of :func:`stability_settings` that give the label ``rule`` gives (1.0: every setting
    agrees); 0.0 for undetermined crops (no person found: nothing supports any label).

    Why: on crowded or low-resolution pools the automatic label is often wrong, and a reviewer cannot check every
    crop. A label that flips when the thresholds move a little is the one most worth a look: reviewing crops from the
    least stable up finds the rule's errors sooner than reviewing them in any fixed order
    (``review_budget`` in ``benchmarks/bench_occlusion.py``, measured with each labelled set left out). It needs no
    labels, so nothing in it is fitted to a dataset.
    """
    codes = label_codes(arrays, rule)
    settings = stability_settings(rule, flip=arrays.flip_shift is not None)
    agree = np.zeros(len(codes), np.int64)
    for other in settings:
        agree += label_codes(arrays, other) == codes
    out = agree / len(settings)
    out[codes == 2] = 0.0
    return out


def review_order(labels: np.ndarray, stability: np.ndarray, paths: list[str] | None = None) -> np.ndarray:
    """Indices in the order a reviewer should check the crops: undetermined first (they have no label yet), then
    from the least stable label up (crops labelled by the ``undetermined`` policy have stability 0.0, corrected ones
    1.0); ties by path (or index)."""
    labels = np.asarray(labels).astype(str)
    keys = paths if paths is not None else [f"{i:012d}" for i in range(len(labels))]
    return np.array(sorted(range(len(labels)), key=lambda i: (labels[i] != "undetermined", float(stability[i]),
                                                              keys[i])), dtype=np.int64)


_TRUE = {"1", "true", "t", "yes", "y", "occluded"}
_FALSE = {"0", "false", "f", "no", "n", "holistic"}


def occluded_verdicts(values: pd.Series) -> pd.Series:
    """An ``occluded`` column as True/False per row, None where a cell holds no verdict: booleans, 0/1 numbers and
    :func:`verdict_of`'s words (true/false, yes/no, occluded/holistic, ...) are verdicts; an empty cell or any other
    value is None.

    Why: a labels file may come from a spreadsheet or another tool; reading "false" or "no" as a non-empty string
    (True) would silently invert labels."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(values):
        return values.astype(bool).astype(object)

    def one(value: object) -> bool | None:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, float, np.integer, np.floating)):
            return bool(value) if value in (0, 1) else None  # NaN (an empty cell) is neither
        return None if value is None else verdict_of(str(value))

    return values.map(one).astype(object)


_CHECKED = {"y", "yes", "x", "1", "true", "t", "checked", "ok"}


def is_checked(value: object) -> bool:
    """A ``checked`` cell of a corrections file that says the reviewer looked at the crop (y, yes, x, 1, true, ok)."""
    return str(value).strip().lower() in _CHECKED


def verdict_of(value: str) -> bool | None:
    """A corrections cell as a verdict: True for occluded (1, true, yes, occluded), False for holistic (0, false, no,
    holistic), None for anything else."""
    word = value.strip().lower()
    return True if word in _TRUE else False if word in _FALSE else None


def read_corrections_and_checks(path: str | os.PathLike[str]) -> tuple[dict[str, bool], set[str]]:
    """A corrections CSV in one read: its verdicts (:func:`read_corrections`) and the crops its optional ``checked``
    column marks (:func:`is_checked`: looked at by a reviewer and found right, so checked by hand although the
    verdict repeats the rule's)."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable corrections CSV ({exc})") from None
    if not {"source_path", "occluded"} <= set(df.columns):
        raise DataError(f"{path}: corrections CSV needs columns source_path,occluded; has {', '.join(df.columns)}")
    out: dict[str, bool] = {}
    row_of: dict[str, int] = {}
    for i, (p, v) in enumerate(zip(df["source_path"], df["occluded"], strict=True)):
        if v.strip().lower() in ("", "undetermined"):
            continue
        verdict = verdict_of(v)
        if verdict is None:
            raise DataError(f"{path}: row {i + 2}: occluded must be 1/0, true/false or occluded/holistic, got '{v}'")
        if p in out and out[p] != verdict:
            raise DataError(f"{path}: rows {row_of[p]} and {i + 2} give {p} different verdicts; keep one")
        out[p] = verdict
        row_of.setdefault(p, i + 2)
    checked = ({p for p, c in zip(df["source_path"], df["checked"], strict=True) if is_checked(c)}
               if "checked" in df.columns else set())
    return out, checked


def read_corrections(path: str | os.PathLike[str]) -> dict[str, bool]:
    """A CSV ``source_path,occluded`` of hand-checked labels (occluded: 1/0, true/false, occluded/holistic).

    Rows saying ``undetermined`` (or left empty) decide nothing and are skipped: the review sheet's template
    (:func:`opreid_bench.splits.review.write_corrections_template`) writes them so for crops with no person found.
    """
    return read_corrections_and_checks(path)[0]


UNDETERMINED_POLICIES = ("exclude", "occluded", "holistic")


def classify_store(
    keypoints_h5: str | os.PathLike[str],
    rule: OcclusionRule | None = None,
    corrections_csv: str | os.PathLike[str] | None = None,
    undetermined: str = "exclude",
) -> pd.DataFrame:
    """Label every crop of a keypoint file (or annotate folder); one row per crop, sorted by source path.

    Columns: ``source_path, occluded, label`` (occluded/holistic/undetermined), ``missing_keypoints`` (';'-joined
    names), ``longest_missing_run, visible_fraction, missing_run`` (';'-joined names of the longest run: why the crop
    is occluded), ``back_view``, ``label_stability`` (:func:`label_stability` of the automatic label: the share of
    the threshold settings that agree with it, 0.0 for a crop with no person found, also when ``undetermined`` gives
    it a label; 1.0 for a crop a correction decided; review from the lowest up), ``label_source`` (who decided the
    label: ``rule``, ``hand`` for a correction, ``policy`` for an undetermined crop given a label by
    ``undetermined``). Crops where no person was found are ``undetermined`` (``occluded`` False); the sampler
    leaves them out unless ``undetermined`` is ``occluded`` or ``holistic`` (the user's decision for all of them) or a
    correction decides them one by one. With ``corrections_csv`` the hand-checked labels replace the automatic ones
    (the other columns keep what the keypoints say); ``df.attrs["corrected"]`` counts the labels that changed and
    ``df.attrs["undetermined"]`` the crops still undetermined, ``df.attrs["flip_measured"]`` the crops whose
    keypoints carry the mirror signal (``Keypoints.flip_shift``). A correction naming a crop not in the keypoint file is
    an error (most likely a typo in the path).
    """
    import pandas as pd

    from opreid_bench.splits.cache import read_keypoints, resolve_keypoints_path

    if undetermined not in UNDETERMINED_POLICIES:
        raise OpreidError(f"unknown undetermined policy '{undetermined}'; use {', '.join(UNDETERMINED_POLICIES)}")
    rule = rule or OcclusionRule()
    kps = read_keypoints(keypoints_h5)
    rows = []
    for path in sorted(kps):
        lab = classify_keypoints(kps[path], rule)
        rows.append(
            (path, lab.occluded, lab.label, ";".join(lab.missing_keypoints), lab.longest_missing_run,
             lab.visible_fraction, ";".join(lab.missing_run), lab.back_view)
        )
    paths = sorted(kps)
    stability = label_stability(KeypointArrays.stack([kps[p] for p in paths]), rule) if paths else np.zeros(0)
    rows = [(*row, round(float(st), 3), "rule") for row, st in zip(rows, stability, strict=True)]
    df = pd.DataFrame(rows, columns=LABEL_COLUMNS)
    df["occluded"] = df["occluded"].astype(bool)
    df["back_view"] = df["back_view"].astype(bool)
    df["longest_missing_run"] = df["longest_missing_run"].astype(int)
    if undetermined != "exclude":
        und = df["label"] == "undetermined"
        df.loc[und, "occluded"] = undetermined == "occluded"
        df.loc[und, "label"] = undetermined
        df.loc[und, "label_source"] = "policy"
    df.attrs["corrected"] = 0
    if corrections_csv is not None:
        corrections, checked = read_corrections_and_checks(corrections_csv)
        unknown = sorted(set(corrections) - set(kps))
        if unknown:
            raise DataError(
                f"{corrections_csv}: {len(unknown)} correction(s) name crops not in "
                f"{resolve_keypoints_path(keypoints_h5)}, e.g. {unknown[0]}"
            )
        new = df["source_path"].map(corrections)
        has = new.notna()
        changed = has & ((new.astype("boolean") != df["occluded"]).fillna(False) | (df["label"] == "undetermined")
                         | (df["label_source"] == "policy"))
        # checked by hand: a verdict that changes the label, or one the reviewer marked checked; a row that only
        # repeats the rule's label (an untouched template row) decides nothing
        hand = changed | (has & df["source_path"].isin(checked))
        df.loc[has, "occluded"] = new[has].astype(bool)
        df["occluded"] = df["occluded"].astype(bool)
        df.loc[has, "label"] = np.where(df.loc[has, "occluded"], "occluded", "holistic")
        df.loc[hand, "label_stability"] = 1.0  # checked by hand: nothing left to review
        df.loc[hand, "label_source"] = "hand"
        df.attrs["corrected"] = int(changed.sum())
        df.attrs["checked_by_hand"] = int(hand.sum())
    df.attrs["undetermined"] = int((df["label"] == "undetermined").sum())
    df.attrs["flip_measured"] = int(sum(kp.flip_shift is not None for kp in kps.values()))
    return df


#: What ``--unstable`` does with the rule's unstable labels before sampling: ``keep`` them (labels as they are), or
#: ``exclude`` them (left out of the split, like undetermined crops, until a person checks them).
UNSTABLE_POLICIES = ("keep", "exclude")


def set_aside_unstable(labels: pd.DataFrame, where: str) -> pd.DataFrame:
    """``labels`` without the crops the rule labelled with stability below :data:`UNSTABLE_BELOW` (``label_source``
    ``rule``; a label checked by hand or given by the ``--undetermined`` policy is the user's decision and stays);
    ``attrs["set_aside_unstable"]`` counts them.

    Why: on every labelled set measured, most unstable labels are wrong and most stable ones right
    (``benchmarks/bench_occlusion.py``, ``errors_by_stability``); a split that must not rest on doubtful labels
    leaves them out rather than guess, at the cost of fewer crops to draw from."""
    import pandas as pd

    missing = [c for c in ("label_stability", "label_source") if c not in labels.columns]
    if missing:
        raise DataError(f"{where}: --unstable exclude needs the column(s) {', '.join(missing)} (classify writes them)")
    stability = pd.to_numeric(labels["label_stability"], errors="coerce")
    source = labels["label_source"].fillna("").astype(str)
    if (stability.isna() | (source == "")).any():
        i = int((stability.isna() | (source == "")).to_numpy().nonzero()[0][0])
        raise DataError(f"{where}: row {i + 2} has no label_stability or label_source; --unstable exclude needs both")
    label = labels["label"].astype(str) if "label" in labels.columns else pd.Series("", index=labels.index)
    drop = (source == "rule") & (stability < UNSTABLE_BELOW) & label.isin(("occluded", "holistic"))
    kept = labels[~drop.to_numpy()].copy()
    kept.attrs = {**labels.attrs, "set_aside_unstable": int(drop.sum())}
    return kept


def label_reliability(labels: pd.DataFrame) -> dict[str, int | None]:
    """How far to trust a table of labels (a ``classify`` output, or a split's rows): ``crops`` with a label
    (occluded or holistic), of them ``checked_by_hand`` (``label_source`` hand) and ``unstable`` (not checked by hand
    and ``label_stability`` below :data:`UNSTABLE_BELOW`, labels given by the undetermined policy included).

    Why: a split's data card should say how many of its labels a person confirmed and how many the rule itself is
    unsure of, so that a reader knows what the occluded/holistic columns rest on. A count is None when a row does not
    say (a labels file made by other means, without these columns or with empty cells)."""
    import pandas as pd

    if "label" in labels.columns:
        labelled = labels[labels["label"].astype(str).isin(("occluded", "holistic"))]
    else:
        labelled = labels
    out: dict[str, int | None] = {"crops": len(labelled), "checked_by_hand": None, "unstable": None}
    source = (labelled["label_source"].fillna("").astype(str) if "label_source" in labelled.columns
              else pd.Series("", index=labelled.index))
    hand = source == "hand"
    if (source != "").all():
        out["checked_by_hand"] = int(hand.sum())
    if "label_stability" in labelled.columns:
        stability = pd.to_numeric(labelled["label_stability"], errors="coerce")
        if stability.notna().all():
            out["unstable"] = int(((stability < UNSTABLE_BELOW) & ~hand).sum())
    return out


def write_labels(df: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """Write the label table as CSV, atomically."""
    from opreid_bench.atomic import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        df[LABEL_COLUMNS].to_csv(tmp, index=False)
    return out
