"""BlazePose (``mediapipe.solutions.pose``, mediapipe 0.10.21) as a COCO-17 pose backend — the default.

mediapipe 0.10.21's wheel ships the pose detector and the *full* landmark model (``model_complexity=1``), so it runs
with no download. Tight person crops are padded with a grey border (``pad`` x the longer side on every side, 0.25 by
default) because BlazePose's person detector needs context around the body; landmarks are mapped back to the crop's
pixel coordinates, so they may lie outside the crop (in the border) when the body part is cut off.

Score: the landmark's ``visibility`` (BlazePose's estimate that the landmark is visible, i.e. neither occluded nor
outside the image), clipped to [0, 1]. A crop where no person is detected gets ``Keypoints.empty`` (all scores 0).

Spec options: ``mediapipe:pad=0.25,conf=0.5`` (``conf`` = ``min_detection_confidence``).
"""

from __future__ import annotations

import numpy as np

from opreid_bench.errors import OpreidError
from opreid_bench.splits.keypoints import Keypoints
from opreid_bench.splits.pose_backends.base import POSE_BACKENDS, PoseBackend

# BlazePose landmark index of each COCO-17 keypoint (COCO order: nose, eyes, ears, shoulders, elbows, wrists,
# hips, knees, ankles; BlazePose uses the same left/right convention = the person's own left).
BLAZEPOSE_TO_COCO17: list[int] = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]

DEFAULT_PAD = 0.25
DEFAULT_MIN_DETECTION_CONFIDENCE = 0.5  # mediapipe's own default; best of 0.1/0.3/0.5 on Partial-REID
GREY = 128


def pad_crop(image: np.ndarray, pad: float) -> tuple[np.ndarray, int]:
    """Surround ``image`` with a grey border of ``pad`` x its longer side; return the padded image and the border."""
    h, w = image.shape[:2]
    border = int(round(pad * max(h, w)))
    if border <= 0:
        return image, 0
    out = np.full((h + 2 * border, w + 2 * border, 3), GREY, dtype=np.uint8)
    out[border : border + h, border : border + w] = image
    return out, border


def _parse_options(arg: str | None) -> dict[str, float]:
    opts = {"pad": DEFAULT_PAD, "conf": DEFAULT_MIN_DETECTION_CONFIDENCE}
    if not arg:
        return opts
    for part in arg.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in opts:
            raise OpreidError(f"mediapipe backend: bad option '{part}'; use mediapipe:pad=0.25,conf=0.5")
        try:
            opts[key] = float(value)
        except ValueError:
            raise OpreidError(f"mediapipe backend: option '{key}' needs a number, got '{value}'") from None
    if not 0.0 <= opts["pad"] <= 2.0 or not 0.0 <= opts["conf"] <= 1.0:
        raise OpreidError("mediapipe backend: pad must be in [0, 2] and conf in [0, 1]")
    return opts


@POSE_BACKENDS.register("mediapipe")
class MediaPipePose(PoseBackend):
    """BlazePose full model, one instance per process, reused for every crop (static-image mode)."""

    name = "mediapipe"

    def __init__(self, pad: float = DEFAULT_PAD, min_detection_confidence: float = DEFAULT_MIN_DETECTION_CONFIDENCE):
        try:
            import mediapipe as mp
        except ImportError as exc:  # pragma: no cover - mediapipe is installed here
            raise OpreidError(
                f"the mediapipe pose backend needs mediapipe==0.10.21 (pip install 'opreid-bench[pose]'): {exc}"
            ) from exc
        self.pad = float(pad)
        self.min_detection_confidence = float(min_detection_confidence)
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=True,
            model_complexity=1,  # the only landmark model shipped in the 0.10.21 wheel
            enable_segmentation=False,
            min_detection_confidence=self.min_detection_confidence,
        )

    @classmethod
    def from_arg(cls, arg: str | None) -> MediaPipePose:
        opts = _parse_options(arg)
        return cls(pad=opts["pad"], min_detection_confidence=opts["conf"])

    @property
    def cache_key(self) -> str:
        return f"mediapipe-0.10.21:full:pad={self.pad:g}:conf={self.min_detection_confidence:g}"

    def predict(self, image: np.ndarray, source_path: str) -> Keypoints:
        h, w = image.shape[:2]
        padded, border = pad_crop(np.ascontiguousarray(image, dtype=np.uint8), self.pad)
        ph, pw = padded.shape[:2]
        result = self._pose.process(padded)
        if result.pose_landmarks is None:
            return Keypoints.empty(image_size=(w, h))
        lms = result.pose_landmarks.landmark
        xy = np.array([[lms[i].x * pw - border, lms[i].y * ph - border] for i in BLAZEPOSE_TO_COCO17], np.float32)
        score = np.array([lms[i].visibility for i in BLAZEPOSE_TO_COCO17], np.float32)
        return Keypoints(xy, score, image_size=(w, h), detected=True)

    def close(self) -> None:
        self._pose.close()
