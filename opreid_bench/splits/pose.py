"""Stage 1 of build-split, the public face: pose backends by spec and the annotate stage.

``make_backend("mediapipe")`` builds a backend; ``annotate_pool(records, out_dir)`` writes ``keypoints.h5``;
``read_keypoints(path)`` reads it back. See ``pose_backends``, ``annotate`` and ``cache`` for the details.
"""

from __future__ import annotations

from opreid_bench.splits.annotate import annotate_pool
from opreid_bench.splits.cache import KeypointStore, read_keypoints
from opreid_bench.splits.keypoints import COCO17_NAMES, Keypoints
from opreid_bench.splits.pose_backends import POSE_BACKENDS, PoseBackend, make_backend

__all__ = [
    "COCO17_NAMES",
    "POSE_BACKENDS",
    "KeypointStore",
    "Keypoints",
    "PoseBackend",
    "annotate_pool",
    "make_backend",
    "read_keypoints",
]
