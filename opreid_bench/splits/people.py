"""The people in a crop: where the main person's body continues past the border, and who stands in front of it.

A single-person pose model fits one whole body into the crop it is given. BlazePose predicts all 33 points, hidden
ones too, so a body cut by the crop's border gets its legs squeezed into the crop, and a person or a suitcase in
front is covered as if it were the person. The person *detector* of BlazePose (shipped in the mediapipe wheel, no
download) answers what the landmark model cannot, from the whole crop and for each person it finds:

- **Body alignment.** Per person, the hip centre ``H`` and the point ``T`` of its full-body circle (above the head):
  ``R = |T - H|`` is the body's scale and ``u = (H - T) / R`` its axis, head to feet. On a standing person each COCO
  keypoint lies at about ``H + a_k R u`` (:data:`BODY_AXIS_FRACTIONS`: medians over the 300 whole-body crops of
  Partial-REID, BlazePose keypoints scored above 0.8 against the detector's alignment). The detector predicts the
  alignment of the whole body even when the crop shows part of it, so :func:`beyond_border` says how far outside the
  crop each keypoint of the main person would lie: feet and knees of a body cut mid-thigh, a head cut at the top. The
  paper's rule (OpenPose) counts such points as missing; ``classify`` does the same (``OcclusionRule.cut_margin``).
- **Other people.** The detector returns every person it finds. The *main* person is the one the crop was cut around
  (:func:`main_person`): the detection whose shoulder centre lies nearest the pose model's shoulders (the landmark
  model runs on the crop itself, centred on it), or without those, nearest the crop's centre line. A keypoint of the
  main person that falls inside the body of another person who stands *in front* is covered (:func:`covered_by_people`),
  the way Occluded-PoseTrack-ReID counts a joint hidden by another person's body as invisible. In front: that
  person's feet are lower in the image (nearer the camera on a floor seen from above, the geometry of every
  surveillance view) by at least :data:`FRONT_MARGIN` of the main person's scale.

How often the detector finds a second person in a crop, and what the signals buy out of sample, is measured in
``benchmarks/bench_occlusion.py``.
"""

from __future__ import annotations

import numpy as np

from opreid_bench.splits.keypoints import COCO17_INDEX, COCO17_NAMES, NUM_KEYPOINTS, PEOPLE_WIDTH, Keypoints

PEOPLE_COLUMNS = ("score", "hip_x", "hip_y", "top_x", "top_y", "shoulder_x", "shoulder_y", "upper_x", "upper_y")
assert len(PEOPLE_COLUMNS) == PEOPLE_WIDTH

# Where each COCO keypoint sits along the body axis, in units of R from the hip centre (module docstring).
BODY_AXIS_FRACTIONS: dict[str, float] = {
    "nose": -0.83, "left_eye": -0.87, "right_eye": -0.87, "left_ear": -0.845, "right_ear": -0.845,
    "left_shoulder": -0.586, "right_shoulder": -0.586, "left_elbow": -0.273, "right_elbow": -0.273,
    "left_wrist": 0.0, "right_wrist": 0.0, "left_hip": 0.028, "right_hip": 0.028,
    "left_knee": 0.438, "right_knee": 0.438, "left_ankle": 0.77, "right_ankle": 0.77,
}
_AXIS = np.array([BODY_AXIS_FRACTIONS[n] for n in COCO17_NAMES], np.float32)
FEET_FRACTION = 0.85  # the soles, below the ankles
BODY_HALF_WIDTH = 0.25  # x R: half the width of a person's body box (shoulders and arms)
FRONT_MARGIN = 0.1  # x the main person's R: how much lower another person's feet must be to stand in front
MATCH_DISTANCE = 0.6  # x R: a detection's shoulder centre this near the pose model's shoulders is the main person
_LS, _RS = COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]


def _alignment(row: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(hip centre, R, unit axis head -> feet) of one detection row."""
    hip, top = row[1:3].astype(np.float64), row[3:5].astype(np.float64)
    r = float(np.linalg.norm(hip - top))
    axis = (hip - top) / r if r > 0 else np.array([0.0, 1.0])
    return hip, max(r, 1e-6), axis


def expected_xy(row: np.ndarray) -> np.ndarray:
    """(17, 2): where each COCO keypoint of the person of detection ``row`` lies on a standing body."""
    hip, r, axis = _alignment(row)
    return (hip[None, :] + (_AXIS[:, None] * r) * axis[None, :]).astype(np.float32)


def feet_y(row: np.ndarray) -> float:
    """Image y of the soles of the person of detection ``row`` (where it stands on the floor)."""
    hip, r, axis = _alignment(row)
    return float(hip[1] + FEET_FRACTION * r * axis[1])


def main_person(kp: Keypoints) -> int | None:
    """Row of ``kp.people`` the crop was cut around (module docstring), or None when there is none."""
    people = kp.people
    if people is None or len(people) == 0:
        return None
    if kp.detected:
        shoulders = (kp.xy[_LS] + kp.xy[_RS]) / 2
        dist = [float(np.linalg.norm(row[5:7] - shoulders)) / _alignment(row)[1] for row in people]
        best = int(np.argmin(dist))
        if dist[best] <= MATCH_DISTANCE:
            return best
        if len(people) > 1:
            return None  # the pose model found someone the detector placed nowhere near: no safe choice
    width = float(kp.image_size[0]) if kp.image_size else 0.0
    off = [abs(float(row[1]) - width / 2) for row in people]
    return int(np.argmin(off))


def beyond_border(kp: Keypoints) -> np.ndarray:
    """(17,) float: how far outside the crop each keypoint of the main person would lie, as a fraction of the crop's
    height (vertically) or width (sideways); <= 0 inside. NaN where unknown (no detector, no main person, no size)."""
    out = np.full(NUM_KEYPOINTS, np.nan, np.float32)
    k = main_person(kp)
    if k is None or kp.image_size is None:
        return out
    w, h = kp.image_size
    exp = expected_xy(kp.people[k])
    x, y = exp[:, 0], exp[:, 1]
    over_y = np.maximum(-y, y - h) / max(h, 1)
    over_x = np.maximum(-x, x - w) / max(w, 1)
    return np.maximum(over_x, over_y).astype(np.float32)


def covered_by_people(kp: Keypoints) -> np.ndarray:
    """(17,) bool: keypoints of the main person that fall inside the body of another detected person standing in
    front of it (module docstring). All False without a detector, without a main person or with nobody else."""
    out = np.zeros(NUM_KEYPOINTS, bool)
    k = main_person(kp)
    if k is None or not kp.detected or len(kp.people) < 2:
        return out
    main = kp.people[k]
    main_feet, main_r = feet_y(main), _alignment(main)[1]
    for j, other in enumerate(kp.people):
        if j == k or feet_y(other) < main_feet + FRONT_MARGIN * main_r:
            continue
        hip, r, _ = _alignment(other)
        top = float(other[4])
        x, y = kp.xy[:, 0], kp.xy[:, 1]
        out |= (np.abs(x - hip[0]) <= BODY_HALF_WIDTH * r) & (y >= top) & (y <= feet_y(other))
    return out
