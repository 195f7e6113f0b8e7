"""mmpose top-down pose estimation on whole crops: ``mmpose:CONFIG,CHECKPOINT`` (both local files).

Used only when the user has installed mmpose (``pip install mmpose mmcv mmengine``); otherwise building it raises a
one-line error that says so. The crop itself is the person box, so the top-down model runs on the full image; its
keypoint scores (heatmap maxima, clipped to [0, 1]) are the scores. The config must be a COCO-17 model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opreid_bench.errors import OpreidError
from opreid_bench.splits.keypoints import NUM_KEYPOINTS, Keypoints
from opreid_bench.splits.pose_backends.base import POSE_BACKENDS, PoseBackend

USAGE = "use --pose mmpose:CONFIG.py,CHECKPOINT.pth (a COCO-17 top-down model and its local checkpoint)"


@POSE_BACKENDS.register("mmpose")
class MMPose(PoseBackend):
    """A COCO-17 top-down mmpose model on the whole crop."""

    name = "mmpose"

    def __init__(self, config: str | Path, checkpoint: str | Path, device: str = "cpu") -> None:
        try:
            from mmpose.apis import inference_topdown, init_model
        except ImportError as exc:
            raise OpreidError(
                f"the mmpose pose backend needs mmpose, which is not installed ({exc}); install mmpose, mmcv and "
                "mmengine, or use --pose mediapipe or --pose precomputed:FILE"
            ) from None
        self.config, self.checkpoint = Path(config), Path(checkpoint)
        for p in (self.config, self.checkpoint):
            if not p.is_file():
                raise OpreidError(f"{p}: mmpose config/checkpoint file does not exist; {USAGE}")
        self._inference = inference_topdown
        self._model = init_model(str(self.config), str(self.checkpoint), device=device)

    @classmethod
    def from_arg(cls, arg: str | None) -> MMPose:
        parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
        if len(parts) != 2:
            # Check for mmpose first, so a user without it learns that before fixing the spec.
            try:
                import mmpose  # noqa: F401
            except ImportError:
                raise OpreidError(
                    "the mmpose pose backend needs mmpose, which is not installed; install mmpose, mmcv and "
                    f"mmengine, or use --pose mediapipe or --pose precomputed:FILE ({USAGE})"
                ) from None
            raise OpreidError(f"mmpose backend: got '{arg}'; {USAGE}")
        return cls(parts[0], parts[1])

    @property
    def cache_key(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        from opreid_bench.outputs import content_digest

        try:
            lib = version("mmpose")
        except PackageNotFoundError:  # pragma: no cover - mmpose imported above
            lib = "unknown"
        return f"mmpose-{lib}:upright:config={content_digest(self.config)}:checkpoint={content_digest(self.checkpoint)}"

    def predict(self, image: np.ndarray, source_path: str) -> Keypoints:  # pragma: no cover - needs mmpose
        h, w = image.shape[:2]
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        results = self._inference(self._model, bgr, bboxes=np.array([[0, 0, w, h]], dtype=np.float32))
        if not results:
            return Keypoints.empty(image_size=(w, h))
        inst = results[0].pred_instances
        xy = np.asarray(inst.keypoints[0], dtype=np.float32)
        score = np.asarray(inst.keypoint_scores[0], dtype=np.float32)
        if xy.shape[0] != NUM_KEYPOINTS:
            raise OpreidError(f"{self.config}: mmpose model predicts {xy.shape[0]} keypoints; a COCO-17 model is needed")
        return Keypoints(xy, score, image_size=(w, h))
