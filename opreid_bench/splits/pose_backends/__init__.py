"""Pose backends (COCO-17 keypoints per crop) behind one interface, chosen by a spec string.

Specs: ``mediapipe`` (BlazePose, the default), ``precomputed:FILE`` (COCO results JSON, a folder of OpenPose JSON
files, or a CSV), ``mmpose:CONFIG,CHECKPOINT`` (needs mmpose installed). Backend modules import their heavy
libraries only when a backend is built.
"""

from __future__ import annotations

from opreid_bench.errors import OpreidError
from opreid_bench.splits.pose_backends import mediapipe as _mediapipe  # noqa: F401 - registers "mediapipe"
from opreid_bench.splits.pose_backends import mmpose as _mmpose  # noqa: F401 - registers "mmpose"
from opreid_bench.splits.pose_backends import precomputed as _precomputed  # noqa: F401 - registers "precomputed"
from opreid_bench.splits.pose_backends.base import POSE_BACKENDS, PoseBackend

__all__ = ["POSE_BACKENDS", "PoseBackend", "make_backend", "parse_spec"]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``NAME[:ARG]`` into the registered name and its argument (a file for precomputed/mmpose)."""
    spec = spec.strip()
    if not spec:
        raise OpreidError("empty pose backend spec; use mediapipe, precomputed:FILE or mmpose:CONFIG,CHECKPOINT")
    name, sep, arg = spec.partition(":")
    return name.lower(), (arg if sep else None)


def make_backend(spec: str) -> PoseBackend:
    """Build the backend named by ``spec`` (see the module docstring)."""
    name, arg = parse_spec(spec)
    cls = POSE_BACKENDS.get(name)
    return cls.from_arg(arg)  # type: ignore[attr-defined]
