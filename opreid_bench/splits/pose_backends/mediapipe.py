"""BlazePose (``mediapipe.solutions.pose``, mediapipe 0.10.21) as a COCO-17 pose backend — the default.

mediapipe 0.10.21's wheel ships the pose detector and the *full* landmark model (``model_complexity=1``), so it runs
with no download. A person crop is already what BlazePose's detector would look for, so by default (``mode=roi``)
the landmark model runs directly on a region of interest derived from the crop, and the detector runs only when that
finds no person:

1. **ROI pass** (``mode=roi``). The crop is resized to the landmark model's input height (``size``, 256 px; small
   crops are upscaled, large ones shrunk, so every crop reaches the model at the same scale), and mediapipe's
   ``PoseLandmarkByRoiCpu`` subgraph runs on a square ROI centred on the crop, ``roi`` x the crop height on a side
   (1.25: the expansion mediapipe applies to a detected body box). It skips the person detector (the speed ratio
   against the static-image pipeline is printed by ``benchmarks/bench_occlusion.py``) and does not depend on the
   detector finding a small, blurry person. The subgraph drops its landmarks when the model's own pose-presence flag
   is low.
2. **Detector passes** (``mode=detect`` starts here). The crop is padded with a grey border (``pad`` x the longer
   side on every side, 0.25 by default; the detector needs context around the body) and run through the full
   static-image pipeline (``mediapipe.solutions.pose.Pose``). If no person is found, once more with twice the border
   and a lower detection confidence.
3. Still nothing: ``Keypoints.empty`` (``detected=False``); ``classify`` labels such a crop *undetermined*.

Landmarks are mapped back to the crop's pixel coordinates, so they may lie outside the crop when the body part is cut
off. Score: the landmark's ``visibility`` (BlazePose's estimate that the landmark is visible, i.e. neither occluded
nor outside the image), clipped to [0, 1]. ``predict_raw`` also returns BlazePose's ``presence`` (ROI pass only).

Support (``seg=1``, the default): BlazePose's landmark model also outputs a person segmentation mask. Visibility
alone misses much real occlusion: the model places a hidden knee where the knee should be, with a confident score,
on top of the cart or the pillar in front of it. The segmentation does not cover the occluder there. So each keypoint
also gets ``Keypoints.support``, the mask averaged over a cell of 1/64 of the crop's height and 1/32 of its width
around the keypoint (NaN outside the crop, where the outside rule already applies), lowered to the mask's mean along
the limb leading to it for knees and ankles, and to BlazePose's ``presence`` for the other keypoints (ROI pass):
:func:`occlusion_support`. ``classify`` counts a keypoint with low support as missing. The held-out gain is
measured in ``benchmarks/bench_occlusion.py`` (``heldout_balanced_accuracy`` against
``heldout_balanced_accuracy_without_support``).

People (``people=1``, the default): BlazePose's person detector also runs once on every crop (padded with a grey
border of ``pad`` x its longer side; the detector letterboxes its input itself), and every person it finds is kept in
``Keypoints.people`` (score, hip centre, full-body circle point, shoulder centre, upper-body circle point; at most
:data:`MAX_PEOPLE`, best first). The detector predicts the alignment of a whole body even when the crop shows part
of it, which is how ``classify`` tells a body cut by the border, and it finds other people in front of the main one
(:mod:`opreid_bench.splits.people`). It runs in the same mediapipe graph call as the ROI pass, where mediapipe's
scheduler runs the two models side by side (one worker process then uses two cores); it costs about half the landmark
pass's CPU time: ``benchmarks/bench_occlusion.py`` measures the pose stage with and without it. ``people=0`` skips it.

Mirror consistency (``flip=1``; off by default): the pass that found the person runs once more on the crop's mirror
image, and each keypoint gets ``Keypoints.flip_shift``, how far it lies from its mirrored twin (left and right
swapped back), in crop heights. BlazePose places a joint it sees at the same place in both images, while a joint it
cannot see (behind an occluder, or beyond the border of a cut body) is guessed from the body model, and the two
guesses often differ. ``classify`` counts a keypoint that moves more than ``OcclusionRule.flip_threshold`` as
missing. It costs one more landmark pass per crop (the pose stage's CPU time per crop 61 ms against 38.5 ms,
2-core Intel Xeon, 2026-12-07, opreid-bench 0.2.0); held out it finds more of Partial-REID's partial crops and calls
more low-resolution holistic crops occluded (``benchmarks/bench_occlusion.py --pose mediapipe:flip=1``;
docs/concepts/occlusion-rule.md has the table). Off by default for both reasons.

Spec options: ``mediapipe:mode=roi,size=256,roi=1.25,pad=0.25,conf=0.5,seg=1,people=1,flip=0`` (``conf`` =
``min_detection_confidence``; ``size=0`` keeps the crop's own size; ``seg=0`` skips the segmentation, so
``support`` is unknown; ``people=0`` skips the person detector, so ``people`` is unknown; ``flip=1`` measures
``flip_shift``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from opreid_bench.errors import OpreidError
from opreid_bench.native_logs import quiet_native_logs
from opreid_bench.splits.keypoints import Keypoints
from opreid_bench.splits.pose_backends.base import POSE_BACKENDS, PoseBackend

# BlazePose landmark index of each COCO-17 keypoint (COCO order: nose, eyes, ears, shoulders, elbows, wrists,
# hips, knees, ankles; BlazePose uses the same left/right convention = the person's own left).
BLAZEPOSE_TO_COCO17: list[int] = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]

DEFAULT_PAD = 0.25
DEFAULT_MIN_DETECTION_CONFIDENCE = 0.5  # mediapipe's own default
RETRY_MIN_DETECTION_CONFIDENCE = 0.3
DEFAULT_SIZE = 256  # BlazePose's landmark model input is 256 x 256
DEFAULT_ROI_SCALE = 1.25  # mediapipe's PoseDetectionToRoi expands the body box by 1.25
MODES = ("roi", "detect")
GREY = 128
MAX_PEOPLE = 6  # detections kept per crop (best first)
SUPPORT_GRID = (32, 64)  # (width, height) cells over the crop in which the segmentation is averaged
# BlazePose landmark index of each landmark's mirror twin (left <-> right; the nose maps to itself).
MIRROR: list[int] = list(range(33))
for _a, _b in ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22),
               (23, 24), (25, 26), (27, 28), (29, 30), (31, 32)):
    MIRROR[_a], MIRROR[_b] = _b, _a

_ROI_GRAPH = """
input_stream: "IMAGE:image"
input_stream: "ROI:roi"
output_stream: "LANDMARKS:pose_landmarks"
output_stream: "SEGMENTATION_MASK:segmentation_mask"
input_side_packet: "MODEL_COMPLEXITY:model_complexity"
input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:pose_landmarks"
  output_stream: "SEGMENTATION_MASK:segmentation_mask"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
}
"""

# The ROI pass and the person detector in one graph (``people=1``, ``mode=roi``): one call per crop instead of two,
# and mediapipe's scheduler runs the two models side by side (benchmarks/bench_occlusion.py times the stage).
_ROI_AND_PEOPLE_GRAPH = _ROI_GRAPH.replace(
    'input_stream: "ROI:roi"\n', 'input_stream: "ROI:roi"\ninput_stream: "PEOPLE_IMAGE:people_image"\n', 1
).replace(
    'output_stream: "SEGMENTATION_MASK:segmentation_mask"\n',
    'output_stream: "SEGMENTATION_MASK:segmentation_mask"\noutput_stream: "DETECTIONS:detections"\n', 1,
) + """node {
  calculator: "PoseDetectionCpu"
  input_stream: "IMAGE:people_image"
  output_stream: "DETECTIONS:detections"
}
"""

_PEOPLE_GRAPH = """
input_stream: "IMAGE:image"
output_stream: "DETECTIONS:detections"
node {
  calculator: "PoseDetectionCpu"
  input_stream: "IMAGE:image"
  output_stream: "DETECTIONS:detections"
}
"""


def mediapipe_version() -> str:
    """The installed mediapipe's version, read at run time (part of the cache key: another version, other keypoints)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mediapipe")
    except PackageNotFoundError:  # pragma: no cover - the backend needs mediapipe anyway
        return "unknown"


def pad_crop(image: np.ndarray, pad: float) -> tuple[np.ndarray, int]:
    """Surround ``image`` with a grey border of ``pad`` x its longer side; return the padded image and the border."""
    h, w = image.shape[:2]
    border = int(round(pad * max(h, w)))
    if border <= 0:
        return image, 0
    out = np.full((h + 2 * border, w + 2 * border, 3), GREY, dtype=np.uint8)
    out[border : border + h, border : border + w] = image
    return out, border


def resize_to_height(image: np.ndarray, height: int) -> tuple[np.ndarray, float]:
    """``image`` scaled (aspect kept) to ``height`` px; returns it and the scale factor (1.0: unchanged)."""
    h, w = image.shape[:2]
    if height <= 0 or h == height:
        return image, 1.0
    import cv2

    scale = height / h
    new_w = max(2, int(round(w * scale)))
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    return np.ascontiguousarray(cv2.resize(image, (new_w, height), interpolation=interp)), scale


def keypoint_support(mask: np.ndarray | None, xy: np.ndarray) -> np.ndarray:
    """Per point of ``xy`` (in ``mask``'s pixels): the person mask averaged over its ``SUPPORT_GRID`` cell; NaN
    outside the mask's frame or without a mask."""
    out = np.full(len(xy), np.nan, np.float32)
    if mask is None:
        return out
    import cv2

    mask = np.asarray(mask, np.float32)
    h, w = mask.shape[:2]
    gw, gh = SUPPORT_GRID
    cells = cv2.resize(mask, (gw, gh), interpolation=cv2.INTER_AREA)
    x, y = xy[:, 0], xy[:, 1]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    cx = np.clip((x[inside] / w * gw).astype(int), 0, gw - 1)
    cy = np.clip((y[inside] / h * gh).astype(int), 0, gh - 1)
    out[inside] = np.clip(cells[cy, cx], 0.0, 1.0)
    return out


# BlazePose landmark -> the landmark its limb segment starts from, for the knees and ankles (hip->knee, knee->ankle).
LEG_SEGMENTS: dict[int, int] = {25: 23, 26: 24, 27: 25, 28: 26}
SEGMENT_SAMPLES = 9  # points sampled along a leg segment (both ends included)


def segment_support(mask: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Per leg landmark of ``LEG_SEGMENTS`` (NaN elsewhere): the person mask (``SUPPORT_GRID`` cells) averaged over
    ``SEGMENT_SAMPLES`` points along the segment from its parent to it, points outside the frame left out.

    Why: a knee or ankle that BlazePose places on top of the occluder can sit on a mask cell that still reads as
    person (the mask bleeds a cell or two past the silhouette), while the limb leading to it crosses the occluder."""
    out = np.full(len(xy), np.nan, np.float32)
    for k, parent in LEG_SEGMENTS.items():
        if k >= len(xy):
            continue
        f = np.linspace(0.0, 1.0, SEGMENT_SAMPLES, dtype=np.float32)[:, None]
        vals = keypoint_support(mask, xy[parent] * (1 - f) + xy[k] * f)
        if not np.isnan(vals).all():
            out[k] = float(np.nanmean(vals))
    return out


def occlusion_support(mask: np.ndarray | None, xy: np.ndarray, presence: np.ndarray | None = None) -> np.ndarray:
    """``Keypoints.support`` of the 33 landmarks: the lowest of the mask cell under the landmark
    (:func:`keypoint_support`), for knees and ankles the mask along the limb leading to them
    (:func:`segment_support`), and for the other landmarks BlazePose's ``presence`` (ROI pass only; NaN = not
    reported); NaN where the landmark is outside the frame or there is no mask.

    Why: BlazePose puts a hidden knee or elbow on top of the occluder with a confident *visibility*, but its
    *presence* (the landmark is in the frame at all) drops for hidden upper-body points, and the mask along the
    shin drops where a cart or bench crosses it. ``benchmarks/bench_occlusion.py`` measures the held-out gain."""
    point = keypoint_support(mask, xy)
    if mask is None:
        return point
    other = segment_support(mask, xy)
    if presence is not None:
        pres = np.clip(np.asarray(presence, np.float32), 0.0, 1.0)
        legs = np.zeros(len(xy), bool)
        legs[[k for k in LEG_SEGMENTS if k < len(xy)]] = True
        other = np.where(legs, other, pres[: len(xy)])
    return np.where(np.isnan(point), np.nan, np.fmin(point, other)).astype(np.float32)


def flip_shift(xy: np.ndarray, mirrored_xy: np.ndarray | None, width: float, height: float) -> np.ndarray:
    """Per landmark of ``xy`` (33, in a ``width`` x ``height`` crop): its distance, in crop heights, from where the
    same pass placed it on the crop's mirror image (``mirrored_xy``, in the mirror image's pixels; mapped back and
    left/right swapped: :data:`MIRROR`); all NaN when the mirror pass found nobody.

    Why: a landmark BlazePose sees lands at the same place in both images; one it guesses (hidden, or beyond the
    border of a cut body) often does not (module docstring)."""
    if mirrored_xy is None or height <= 0:
        return np.full(len(xy), np.nan, np.float32)
    back = np.asarray(mirrored_xy, np.float32)[MIRROR].copy()
    back[:, 0] = width - back[:, 0]
    return (np.linalg.norm(np.asarray(xy, np.float32) - back, axis=1) / height).astype(np.float32)


@dataclass
class RawPose:
    """All 33 BlazePose landmarks of one crop in the crop's pixels, and which pass found them."""

    xy: np.ndarray  # (33, 2)
    visibility: np.ndarray  # (33,)
    presence: np.ndarray  # (33,), NaN where the pass does not report it
    stage: str  # "roi", "detect", "detect_retry" or "none"
    support: np.ndarray | None = None  # (33,), person-segmentation support (module docstring); None with seg=0
    flip_shift: np.ndarray | None = None  # (33,), distance to the mirror pass's landmark (flip_shift); None: flip=0


def _parse_options(arg: str | None) -> dict[str, Any]:
    opts: dict[str, Any] = {"mode": "roi", "size": DEFAULT_SIZE, "roi": DEFAULT_ROI_SCALE, "pad": DEFAULT_PAD,
                            "conf": DEFAULT_MIN_DETECTION_CONFIDENCE, "seg": 1, "people": 1, "flip": 0}
    if not arg:
        return opts
    for part in arg.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in opts:
            raise OpreidError(f"mediapipe backend: bad option '{part}'; use mediapipe:mode=roi,size=256,roi=1.25,"
                              "pad=0.25,conf=0.5,seg=1,people=1,flip=0")
        if key == "mode":
            if value.strip() not in MODES:
                raise OpreidError(f"mediapipe backend: mode must be one of {', '.join(MODES)}, got '{value}'")
            opts[key] = value.strip()
            continue
        try:
            opts[key] = float(value)
        except ValueError:
            raise OpreidError(f"mediapipe backend: option '{key}' needs a number, got '{value}'") from None
    if not 0.0 <= opts["pad"] <= 2.0 or not 0.0 <= opts["conf"] <= 1.0:
        raise OpreidError("mediapipe backend: pad must be in [0, 2] and conf in [0, 1]")
    if not 0 <= opts["size"] <= 2048 or not 0.5 <= opts["roi"] <= 3.0:
        raise OpreidError("mediapipe backend: size must be in [0, 2048] and roi in [0.5, 3]")
    for switch in ("seg", "people", "flip"):
        if opts[switch] not in (0.0, 1.0):
            raise OpreidError(f"mediapipe backend: {switch} must be 0 or 1, got '{opts[switch]:g}'")
        opts[switch] = bool(opts[switch])
    opts["size"] = int(opts["size"])
    return opts


@POSE_BACKENDS.register("mediapipe")
class MediaPipePose(PoseBackend):
    """BlazePose full model, one instance per process, reused for every crop (see the module docstring)."""

    name = "mediapipe"

    def __init__(
        self,
        pad: float = DEFAULT_PAD,
        min_detection_confidence: float = DEFAULT_MIN_DETECTION_CONFIDENCE,
        *,
        mode: str = "roi",
        size: int = DEFAULT_SIZE,
        roi_scale: float = DEFAULT_ROI_SCALE,
        segmentation: bool = True,
        people: bool = True,
        flip: bool = False,
    ):
        try:
            import mediapipe as mp
        except ImportError as exc:  # pragma: no cover - mediapipe is installed here
            raise OpreidError(
                f"the mediapipe pose backend needs mediapipe==0.10.21 (pip install 'opreid-bench[pose]'): {exc}"
            ) from exc
        if mode not in MODES:
            raise OpreidError(f"mediapipe backend: mode must be one of {', '.join(MODES)}, got '{mode}'")
        self._mp = mp
        self.pad = float(pad)
        self.min_detection_confidence = float(min_detection_confidence)
        self.mode = mode
        self.size = int(size)
        self.roi_scale = float(roi_scale)
        self.segmentation = bool(segmentation)
        self.people = bool(people)
        self.flip = bool(flip)
        self._pose: Any = None  # built on first use
        self._people: Any = None
        self._retry: Any = None
        self._roi: Any = None
        self._roi_people: Any = None
        self._roi_mirror: Any = None

    @classmethod
    def from_arg(cls, arg: str | None) -> MediaPipePose:
        opts = _parse_options(arg)
        return cls(pad=opts["pad"], min_detection_confidence=opts["conf"], mode=opts["mode"], size=opts["size"],
                   roi_scale=opts["roi"], segmentation=opts["seg"], people=opts["people"], flip=opts["flip"])

    @property
    def cache_key(self) -> str:
        # "upright": crops decoded with their EXIF orientation applied and 16-bit values scaled
        # (opreid_bench.data.decode.upright_rgb); keypoints found on a crop decoded otherwise are not reused
        key = (f"mediapipe-{mediapipe_version()}:upright:full:pad={self.pad:g}"
               f":conf={self.min_detection_confidence:g}")
        if self.mode == "roi":
            key += f":roi={self.roi_scale:g}"
        key += f":size={self.size}:retry"
        key += (f":seg={SUPPORT_GRID[0]}x{SUPPORT_GRID[1]}:legs{SEGMENT_SAMPLES}:presence"
                if self.segmentation else "")
        key += f":people{MAX_PEOPLE}@crop" if self.people else ""
        return key + (":flip" if self.flip else "")

    # ---- the passes ----

    def _detector(self, retry: bool) -> Any:
        if retry:
            if self._retry is None:
                self._retry = self._mp.solutions.pose.Pose(
                    static_image_mode=True, model_complexity=1, enable_segmentation=self.segmentation,
                    min_detection_confidence=min(self.min_detection_confidence, RETRY_MIN_DETECTION_CONFIDENCE),
                )
            return self._retry
        if self._pose is None:
            self._pose = self._mp.solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=1,  # the only landmark model shipped in the 0.10.21 wheel
                enable_segmentation=self.segmentation,
                min_detection_confidence=self.min_detection_confidence,
            )
        return self._pose

    def _solution(self, graph: str, outputs: list[str], side_inputs: dict[str, Any] | None = None) -> Any:
        """A mediapipe graph (text) wrapped for ``process`` calls."""
        from google.protobuf import text_format
        from mediapipe.framework import calculator_pb2
        from mediapipe.python.solution_base import SolutionBase

        config = text_format.Parse(graph, calculator_pb2.CalculatorGraphConfig())
        return SolutionBase(graph_config=config, side_inputs=side_inputs, outputs=outputs)

    def _landmark_outputs(self) -> tuple[dict[str, Any], list[str]]:
        side = {"model_complexity": 1, "enable_segmentation": self.segmentation}
        return side, ["pose_landmarks", "segmentation_mask"] if self.segmentation else ["pose_landmarks"]

    def _roi_graph(self) -> Any:
        if self._roi is None:
            side, outputs = self._landmark_outputs()
            self._roi = self._solution(_ROI_GRAPH, outputs, side)
        return self._roi

    def _roi_mirror_graph(self) -> Any:
        """The ROI pass without the segmentation: the mirror pass needs the landmarks alone."""
        if self._roi_mirror is None:
            self._roi_mirror = self._solution(_ROI_GRAPH, ["pose_landmarks"],
                                              {"model_complexity": 1, "enable_segmentation": False})
        return self._roi_mirror

    def _roi_people_graph(self) -> Any:
        if self._roi_people is None:
            side, outputs = self._landmark_outputs()
            self._roi_people = self._solution(_ROI_AND_PEOPLE_GRAPH, [*outputs, "detections"], side)
        return self._roi_people

    def _people_graph(self) -> Any:
        if self._people is None:
            self._people = self._solution(_PEOPLE_GRAPH, ["detections"])
        return self._people

    def detect_people(self, image: np.ndarray) -> np.ndarray:
        """(P, 9) people the person detector finds in ``image`` (padded by ``pad``), in ``image``'s pixels, best
        first (layout: :data:`opreid_bench.splits.people.PEOPLE_COLUMNS`)."""
        padded, border = pad_crop(np.ascontiguousarray(image, dtype=np.uint8), self.pad)
        with quiet_native_logs():
            result = self._people_graph().process({"image": padded})
        return self._people_rows(result.detections, padded.shape[:2], border)

    @staticmethod
    def _people_rows(detections: Any, padded_hw: tuple[int, ...], border: int) -> np.ndarray:
        """The detector's output as (P, 9) rows in the unpadded crop's pixels, best first."""
        ph, pw = padded_hw[:2]
        rows = []
        for det in detections or []:
            pts = det.location_data.relative_keypoints
            if len(pts) < 4:
                continue
            xy = [(p.x * pw - border, p.y * ph - border) for p in list(pts)[:4]]
            rows.append([float(det.score[0]), *(v for pt in xy for v in pt)])
        rows.sort(key=lambda r: -r[0])
        return np.array(rows[:MAX_PEOPLE], np.float32).reshape(-1, 9)

    def _crop_roi(self, image: np.ndarray) -> Any:
        """The ROI pass's region: a square of ``roi_scale`` x the height, centred on ``image``."""
        from mediapipe.framework.formats import rect_pb2

        h, w = image.shape[:2]
        side = self.roi_scale * h
        return rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=side / w, height=side / h, rotation=0.0)

    def _run_roi(
        self, image: np.ndarray, people_image: np.ndarray | None = None
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None, Any]:
        """The ROI pass on ``image`` (landmarks in its pixels, or None) and, when ``people_image`` is given, the
        person detector's raw detections on it, from the same graph call."""
        h, w = image.shape[:2]
        roi = self._crop_roi(image)
        if people_image is None:
            result, detections = self._roi_graph().process({"image": image, "roi": roi}), None
        else:
            result = self._roi_people_graph().process({"image": image, "roi": roi, "people_image": people_image})
            detections = result.detections
        return self._roi_landmarks(result, w, h), detections

    @staticmethod
    def _landmark_xy(result: Any, w: int, h: int) -> np.ndarray | None:
        """The ROI pass's 33 landmarks (33, 2) in the pixels of its ``w`` x ``h`` image; None when it found nobody."""
        if result.pose_landmarks is None:
            return None
        return np.array([[lm.x * w, lm.y * h] for lm in result.pose_landmarks.landmark], np.float32)

    def _roi_landmarks(
        self, result: Any, w: int, h: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
        xy = self._landmark_xy(result, w, h)
        if xy is None:
            return None
        lms = result.pose_landmarks.landmark
        vis = np.array([lm.visibility for lm in lms], np.float32)
        pres = np.array([lm.presence for lm in lms], np.float32)
        mask = getattr(result, "segmentation_mask", None) if self.segmentation else None
        return xy, vis, pres, occlusion_support(mask, xy, pres) if self.segmentation else None

    def _mirror_xy(self, work: np.ndarray, stage: str) -> np.ndarray | None:
        """The landmarks (33, 2) that pass ``stage`` places on ``work``'s mirror image, in the mirror image's pixels;
        None when it finds nobody there."""
        mirror = np.ascontiguousarray(work[:, ::-1])
        if stage == "roi":
            result = self._roi_mirror_graph().process({"image": mirror, "roi": self._crop_roi(mirror)})
            return self._landmark_xy(result, mirror.shape[1], mirror.shape[0])
        retry = stage == "detect_retry"
        got = self._run_detect(mirror, max(0.5, 2 * self.pad) if retry else self.pad, retry)
        return None if got is None else got[0]

    def _with_flip(self, pose: RawPose, work: np.ndarray, scale: float) -> RawPose:
        """``pose`` with its ``flip_shift`` measured (``flip=1``; module docstring)."""
        if not self.flip or pose.stage == "none":
            return pose
        h, w = work.shape[:2]
        pose.flip_shift = flip_shift(pose.xy * scale, self._mirror_xy(work, pose.stage), w, h)
        return pose

    def _run_detect(
        self, image: np.ndarray, pad: float, retry: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        padded, border = pad_crop(image, pad)
        ph, pw = padded.shape[:2]
        result = self._detector(retry).process(padded)
        if result.pose_landmarks is None:
            return None
        lms = result.pose_landmarks.landmark
        xy = np.array([[lm.x * pw - border, lm.y * ph - border] for lm in lms], np.float32)
        vis = np.array([lm.visibility for lm in lms], np.float32)
        support = None
        if self.segmentation:
            mask = result.segmentation_mask
            h, w = image.shape[:2]
            support = occlusion_support(None if mask is None else mask[border : border + h, border : border + w], xy)
        return xy, vis, support

    def predict_raw(self, image: np.ndarray) -> RawPose:
        """All 33 landmarks in ``image``'s pixels from the first pass that finds a person (module docstring)."""
        return self._predict(image, with_people=False)[0]

    def _predict(self, image: np.ndarray, with_people: bool) -> tuple[RawPose, np.ndarray | None]:
        """:meth:`predict_raw` and, with ``with_people``, the people the detector finds (run in the ROI pass's graph
        call when there is one). mediapipe's native log lines are kept off the terminal
        (:func:`opreid_bench.native_logs.quiet_native_logs`)."""
        with quiet_native_logs():
            return self._predict_passes(image, with_people)

    def _predict_passes(self, image: np.ndarray, with_people: bool) -> tuple[RawPose, np.ndarray | None]:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        work, scale = resize_to_height(image, self.size)
        nan = np.full(33, np.nan, np.float32)
        people = None
        if self.mode == "roi":
            padded = pad_crop(image, self.pad) if with_people else None
            found, detections = self._run_roi(work, None if padded is None else padded[0])
            if padded is not None:
                people = self._people_rows(detections, padded[0].shape, padded[1])
            if found is not None:
                pose = RawPose(found[0] / scale, found[1], found[2], "roi", found[3])
                return self._with_flip(pose, work, scale), people
        if with_people and people is None:
            people = self.detect_people(image)
        for stage, pad, retry in (("detect", self.pad, False), ("detect_retry", max(0.5, 2 * self.pad), True)):
            got = self._run_detect(work, pad, retry)
            if got is not None:
                return self._with_flip(RawPose(got[0] / scale, got[1], nan, stage, got[2]), work, scale), people
        return RawPose(np.zeros((33, 2), np.float32), np.zeros(33, np.float32), nan, "none"), people

    def predict(self, image: np.ndarray, source_path: str) -> Keypoints:
        h, w = image.shape[:2]
        raw, people = self._predict(image, with_people=self.people)
        if raw.stage == "none":
            empty = Keypoints.empty(image_size=(w, h))
            empty.people = people
            return empty
        idx = BLAZEPOSE_TO_COCO17
        support = None if raw.support is None else raw.support[idx]
        shift = None if raw.flip_shift is None else raw.flip_shift[idx]
        return Keypoints(raw.xy[idx], raw.visibility[idx], image_size=(w, h), detected=True, support=support,
                         people=people, flip_shift=shift)

    def close(self) -> None:
        for graph in (self._pose, self._retry, self._roi, self._people, self._roi_people, self._roi_mirror):
            if graph is not None:
                graph.close()
        self._pose = self._retry = self._roi = self._people = self._roi_people = self._roi_mirror = None
