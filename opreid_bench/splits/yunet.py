"""YuNet (Wu, Peng and Yu, 2023, "YuNet: A tiny millisecond-level face detector"), the CNN of ``libfacedetection``:
a face detector trained on WIDER FACE's small, blurred and crowded faces, from about 10 px up.

Why it is here: the faces face masking misses most are bystanders' of 8-25 px in crowded crops, in front of or
beside the main person; BlazeFace and MTCNN find part of them. How it enters the masking (upscale, score floor, box
growth, the body rule) is :mod:`opreid_bench.splits.all_faces`'s; ``docs/concepts/occlusion-rule.md`` has what it
changes on the hand-boxed crops.

The detector runs through the BSD-licensed ``yuface`` wheel (``pip install yuface==2023.5.1``; Linux and Windows,
x86-64, Python up to 3.11), which carries ``libfacedetection`` with its trained weights compiled in: nothing is
downloaded. Without it :func:`version` is ``None`` and face masking runs without this source (the data card says so);
the environment variable :data:`OFF_ENV` set to ``off`` turns it off where it is installed.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from opreid_bench.errors import OpreidError

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in pixels, right/bottom exclusive

OFF_ENV = "OPREID_YUNET"
PACKAGE = "yuface"
UPSCALE = 2.0  # a crop is upscaled this much first, so that faces of 5-10 px reach the detector's smallest anchors
MAX_SIDE = 960  # px: the longest side the detector is given after upscaling (above it yuface warns of worse finds)
MIN_CONFIDENCE = 0.5


def version() -> str | None:
    """The installed ``yuface`` version, or ``None`` when it is not installed, cannot be loaded here (a wheel of
    another platform or Python), or :data:`OFF_ENV` is ``off``: masking then runs without it and warns."""
    if os.environ.get(OFF_ENV, "").strip().lower() == "off":
        return None
    return _installed()


@functools.lru_cache(maxsize=1)
def _installed() -> str | None:
    if importlib.util.find_spec(PACKAGE) is None:
        return None
    try:
        _detector()
    except OpreidError:
        return None
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:  # importable but not installed as a distribution (a source tree)
        return "unknown"


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    try:
        import yuface
        from yuface import c_detect
    except ImportError as exc:  # installed for another platform or Python
        raise OpreidError(f"the yuface package could not be loaded ({exc}); reinstall it "
                          f"(pip install yuface==2023.5.1) or set {OFF_ENV}=off") from None
    set_threads = _openmp_threads_setter(Path(yuface.__file__).parent)

    def one_thread(image: np.ndarray) -> Any:
        if set_threads is not None:
            set_threads(1)  # per calling thread: OpenMP keeps the setting per thread
        return c_detect(image)

    return one_thread


def _openmp_threads_setter(package: Path) -> Any:
    """``omp_set_num_threads`` of the OpenMP runtime the wheel bundles (not torch's), or None where it is not found
    (another build of the wheel): libfacedetection then keeps its default, which changes its speed only (the boxes
    are the same on one thread or several). It is run on one thread: on every core it would oversubscribe the
    machine when masking runs one crop per core (on a busy 2-core machine a call took 111 ms on both cores against
    20 ms on one)."""
    for lib in sorted((package.parent / f"{PACKAGE}.libs").glob("libgomp*.so*")):
        try:
            return ctypes.CDLL(str(lib)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


def detect(image_bgr: np.ndarray) -> np.ndarray:
    """Faces in a BGR uint8 array (H, W, 3): rows (x1, y1, x2, y2, score in [0, 1]) in its pixels, as the detector
    returns them (its own non-maximum suppression applied), best first."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise OpreidError(f"YuNet needs a BGR uint8 array (H, W, 3), got {image_bgr.dtype} {tuple(image_bgr.shape)}")
    raw = np.asarray(_detector()(np.ascontiguousarray(image_bgr)), dtype=np.int64).reshape(-1, 16)
    # each row: score x 100, x, y, w, h, five landmarks (x, y); coordinates may be negative at the border
    rows = np.zeros((len(raw), 5), np.float64)
    rows[:, 0], rows[:, 1] = raw[:, 1], raw[:, 2]
    rows[:, 2], rows[:, 3] = raw[:, 1] + raw[:, 3], raw[:, 2] + raw[:, 4]
    rows[:, 4] = raw[:, 0] / 100.0
    return rows[np.argsort(-rows[:, 4], kind="stable")]


def detect_faces_yunet(image: Image.Image, *, upscale: float = UPSCALE,
                       min_confidence: float = MIN_CONFIDENCE) -> list[tuple[Box, float]]:
    """Faces YuNet finds in a crop with at least ``min_confidence``, as ((left, top, right, bottom), score) in the
    crop's pixels (clipped to it), sorted by box.

    The crop is upscaled ``upscale`` times (bicubic) first, less where its longer side would pass
    :data:`MAX_SIDE`, never shrunk. Deterministic: the same image gives the same boxes."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    scale = max(1.0, min(upscale, MAX_SIDE / max(1, w, h)))
    big = rgb if scale == 1.0 else rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    rows = detect(np.asarray(big)[:, :, ::-1])
    out: list[tuple[Box, float]] = []
    for x1, y1, x2, y2, score in rows.tolist():
        if score < min_confidence:
            continue
        box = (max(0, int(x1 / scale)), max(0, int(y1 / scale)), min(w, int(np.ceil(x2 / scale))),
               min(h, int(np.ceil(y2 / scale))))
        if box[2] > box[0] and box[3] > box[1]:
            out.append((box, float(score)))
    return sorted(out)
