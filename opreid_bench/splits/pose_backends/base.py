"""The pose-backend interface and its registry: every backend turns one RGB crop into COCO-17 ``Keypoints``."""

from __future__ import annotations

import abc

import numpy as np

from opreid_bench.registry import Registry
from opreid_bench.splits.keypoints import Keypoints


class PoseBackend(abc.ABC):
    """One pose model (or keypoint file) that answers per crop.

    A backend is built once per process (or Ray actor) and reused for every crop; ``close`` frees its model.
    ``cache_key`` names the backend and its settings, stored in ``keypoints.h5`` so that a resumed run refuses to
    mix keypoints of two different backends. It must hash what the backend reads (file contents, the installed
    library's version) and its options, never a path's spelling. ``keyed_by_path``: the answer for a crop depends on
    where it is, not only on its bytes (the cache then keys entries by absolute path and content hash).
    """

    name: str = "base"
    keyed_by_path: bool = False

    @abc.abstractmethod
    def predict(self, image: np.ndarray, source_path: str) -> Keypoints | None:
        """Keypoints of the person in ``image`` (H, W, 3 uint8 RGB) read from ``source_path``.

        Return ``Keypoints.empty(...)`` when no person is found, or ``None`` when the backend has no answer for this
        crop at all (e.g. a precomputed file without it); the crop is then listed as skipped in the report.
        """

    @classmethod
    def from_arg(cls, arg: str | None) -> PoseBackend:
        """Build from the part of the spec after ``NAME:`` (None when there is none)."""
        if arg:
            from opreid_bench.errors import OpreidError

            raise OpreidError(f"pose backend '{cls.name}' takes no argument, got '{arg}'")
        return cls()

    @property
    def cache_key(self) -> str:
        return self.name

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model (optional)."""


POSE_BACKENDS: Registry[type[PoseBackend]] = Registry("pose backend")
