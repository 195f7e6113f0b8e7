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

Spec options: ``mediapipe:mode=roi,size=256,roi=1.25,pad=0.25,conf=0.5`` (``conf`` = ``min_detection_confidence``;
``size=0`` keeps the crop's own size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from opreid_bench.errors import OpreidError
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

_ROI_GRAPH = """
input_stream: "IMAGE:image"
input_stream: "ROI:roi"
output_stream: "LANDMARKS:pose_landmarks"
input_side_packet: "MODEL_COMPLEXITY:model_complexity"
input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:pose_landmarks"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
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


@dataclass
class RawPose:
    """All 33 BlazePose landmarks of one crop in the crop's pixels, and which pass found them."""

    xy: np.ndarray  # (33, 2)
    visibility: np.ndarray  # (33,)
    presence: np.ndarray  # (33,), NaN where the pass does not report it
    stage: str  # "roi", "detect", "detect_retry" or "none"


def _parse_options(arg: str | None) -> dict[str, Any]:
    opts: dict[str, Any] = {"mode": "roi", "size": DEFAULT_SIZE, "roi": DEFAULT_ROI_SCALE, "pad": DEFAULT_PAD,
                            "conf": DEFAULT_MIN_DETECTION_CONFIDENCE}
    if not arg:
        return opts
    for part in arg.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in opts:
            raise OpreidError(f"mediapipe backend: bad option '{part}'; use mediapipe:mode=roi,size=256,roi=1.25,"
                              "pad=0.25,conf=0.5")
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
        self._pose: Any = None  # built on first use
        self._retry: Any = None
        self._roi: Any = None

    @classmethod
    def from_arg(cls, arg: str | None) -> MediaPipePose:
        opts = _parse_options(arg)
        return cls(pad=opts["pad"], min_detection_confidence=opts["conf"], mode=opts["mode"], size=opts["size"],
                   roi_scale=opts["roi"])

    @property
    def cache_key(self) -> str:
        key = f"mediapipe-{mediapipe_version()}:full:pad={self.pad:g}:conf={self.min_detection_confidence:g}"
        if self.mode == "roi":
            key += f":roi={self.roi_scale:g}"
        return key + f":size={self.size}:retry"

    # ---- the passes ----

    def _detector(self, retry: bool) -> Any:
        if retry:
            if self._retry is None:
                self._retry = self._mp.solutions.pose.Pose(
                    static_image_mode=True, model_complexity=1, enable_segmentation=False,
                    min_detection_confidence=min(self.min_detection_confidence, RETRY_MIN_DETECTION_CONFIDENCE),
                )
            return self._retry
        if self._pose is None:
            self._pose = self._mp.solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=1,  # the only landmark model shipped in the 0.10.21 wheel
                enable_segmentation=False,
                min_detection_confidence=self.min_detection_confidence,
            )
        return self._pose

    def _roi_graph(self) -> Any:
        if self._roi is None:
            from google.protobuf import text_format
            from mediapipe.framework import calculator_pb2
            from mediapipe.python.solution_base import SolutionBase

            config = text_format.Parse(_ROI_GRAPH, calculator_pb2.CalculatorGraphConfig())
            self._roi = SolutionBase(
                graph_config=config,
                side_inputs={"model_complexity": 1, "enable_segmentation": False},
                outputs=["pose_landmarks"],
            )
        return self._roi

    def _run_roi(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        from mediapipe.framework.formats import rect_pb2

        h, w = image.shape[:2]
        side = self.roi_scale * h
        roi = rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=side / w, height=side / h, rotation=0.0)
        result = self._roi_graph().process({"image": image, "roi": roi})
        if result.pose_landmarks is None:
            return None
        lms = result.pose_landmarks.landmark
        xy = np.array([[lm.x * w, lm.y * h] for lm in lms], np.float32)
        vis = np.array([lm.visibility for lm in lms], np.float32)
        pres = np.array([lm.presence for lm in lms], np.float32)
        return xy, vis, pres

    def _run_detect(self, image: np.ndarray, pad: float, retry: bool) -> tuple[np.ndarray, np.ndarray] | None:
        padded, border = pad_crop(image, pad)
        ph, pw = padded.shape[:2]
        result = self._detector(retry).process(padded)
        if result.pose_landmarks is None:
            return None
        lms = result.pose_landmarks.landmark
        xy = np.array([[lm.x * pw - border, lm.y * ph - border] for lm in lms], np.float32)
        vis = np.array([lm.visibility for lm in lms], np.float32)
        return xy, vis

    def predict_raw(self, image: np.ndarray) -> RawPose:
        """All 33 landmarks in ``image``'s pixels from the first pass that finds a person (module docstring)."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        work, scale = resize_to_height(image, self.size)
        nan = np.full(33, np.nan, np.float32)
        if self.mode == "roi":
            found = self._run_roi(work)
            if found is not None:
                return RawPose(found[0] / scale, found[1], found[2], "roi")
        for stage, pad, retry in (("detect", self.pad, False), ("detect_retry", max(0.5, 2 * self.pad), True)):
            got = self._run_detect(work, pad, retry)
            if got is not None:
                return RawPose(got[0] / scale, got[1], nan, stage)
        return RawPose(np.zeros((33, 2), np.float32), np.zeros(33, np.float32), nan, "none")

    def predict(self, image: np.ndarray, source_path: str) -> Keypoints:
        h, w = image.shape[:2]
        raw = self.predict_raw(image)
        if raw.stage == "none":
            return Keypoints.empty(image_size=(w, h))
        idx = BLAZEPOSE_TO_COCO17
        return Keypoints(raw.xy[idx], raw.visibility[idx], image_size=(w, h), detected=True)

    def close(self) -> None:
        for graph in (self._pose, self._retry, self._roi):
            if graph is not None:
                graph.close()
        self._pose = self._retry = self._roi = None
