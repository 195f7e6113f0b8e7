"""Query x gallery distances from features, computed in query chunks: numpy (BLAS) on the CPU, torch on CUDA.

- ``euclidean``: ``sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0))``, the expansion every ReID toolkit uses, on features from
  which the gallery's mean (rounded so that the subtraction is exact) is first subtracted: the distances are the same, but a component every feature
  shares (an offset, features that lie close together) no longer swamps float32 -- without it the expansion cancels
  catastrophically and the ranking changes with the offset. The squared distance is clamped at 0 before the square
  root because float32 cancellation can still make it slightly negative.
- ``cosine``: ``1 - cos(q, g)`` on L2-normalised features (a zero vector stays zero, so its distances are 1).

Memory is bounded by ``chunk_size x gallery`` floats per step, whatever the number of queries. On the CPU torch is
not imported (a feature file is evaluated without it); the two paths compute the same float32 expressions in the same
order, so they agree to float32 rounding of the matrix products.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from opreid_bench.errors import EvaluationError

if TYPE_CHECKING:
    import torch

METRICS = ("euclidean", "cosine")


def _gpu_possible() -> bool:
    """Whether torch could see a GPU here: torch is loaded already, or a GPU driver's device files exist (on Linux;
    elsewhere torch is asked). Without a driver ``torch.cuda.is_available()`` is False, so torch need not load."""
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg"))


def resolve_device(device: str | None = None) -> str:
    """``None`` -> ``"cuda"`` when a GPU is available, else ``"cpu"``; a named device must exist."""
    if device == "cpu" or (device is None and not _gpu_possible()):
        return "cpu"
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise EvaluationError(f"unknown torch device {device!r} ({exc})") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EvaluationError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):  # mps, xpu, meta, ...: torch fails on them later, with a traceback
        raise EvaluationError(f"device {device!r} is not supported for distances; use --device cpu or cuda")
    return str(dev)


def _check_features(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise EvaluationError(f"{name} features must be 2-D (N x D), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise EvaluationError(f"{name} features are empty (0 rows)")
    if arr.dtype.kind not in "fiu":
        raise EvaluationError(f"{name} features must be real numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise EvaluationError(f"{name} features hold NaN/inf (row {bad})")
    return arr


def centred(x: np.ndarray, centre: np.ndarray | None, name: str, rows: int = 65536) -> np.ndarray:
    """``x - centre`` as float32, subtracted in float64 a block of rows at a time (no float64 copy of a large gallery),
    checked by :func:`_in_range`; ``x`` itself when ``centre`` is None (cosine)."""
    if centre is None:
        return x
    out = np.empty(x.shape, dtype=np.float32)
    for i in range(0, x.shape[0], rows):
        out[i:i + rows] = np.asarray(x[i:i + rows], dtype=np.float64) - centre
    return _in_range(out, name)


def _in_range(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` (centred, float32) when its squared euclidean distances fit float32; else an error saying so, rather than
    distances that overflow to inf."""
    if x.size:
        largest = float(np.abs(x).max())
        if largest * largest * 4 * x.shape[1] > float(np.finfo(np.float32).max):
            raise EvaluationError(f"{name} features are too large for float32 distances (a value {largest:.3g} away "
                                  "from the gallery's mean): scale them down (the ranking does not change)")
    return x


def gallery_centre(gf: np.ndarray, metric: str) -> np.ndarray | None:
    """The gallery's mean feature for euclidean distances (see the module docstring), None for cosine. Each
    dimension's mean is rounded to a multiple of the power of two just below its spread, so the subtraction is exact
    where the features are exact (small integers stay integers: real ties stay ties)."""
    if metric != "euclidean":
        return None
    mean = gf.mean(axis=0, dtype=np.float64)
    squares = np.zeros(gf.shape[1], dtype=np.float64)
    for i in range(0, gf.shape[0], 65536):  # the spread a block at a time: no float64 copy of a large gallery
        squares += ((np.asarray(gf[i:i + 65536], dtype=np.float64) - mean) ** 2).sum(axis=0)
    spread = np.sqrt(squares / gf.shape[0])
    step = np.exp2(np.floor(np.log2(np.where(spread > 0, spread, 1.0))))
    return np.where(spread > 0, np.round(mean / step) * step, mean)


def centred_features(qf: Any, gf: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery features (numpy or torch) as the evaluator takes its distances from them: less the gallery's
    mean (:func:`gallery_centre`) for euclidean, unchanged for cosine. Every ranking of the package (``evaluate``,
    ``search``, re-ranking, faiss) starts from these, so that they rank alike when features share a large part."""
    def as_numpy(x: Any) -> np.ndarray:
        return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)

    q, g = as_numpy(qf), as_numpy(gf)
    if metric != "euclidean":
        return q, g
    centre = gallery_centre(g, metric)
    return centred(q, centre, "query"), centred(g, centre, "gallery")


def _prepare(x: np.ndarray, metric: str, device: str) -> torch.Tensor:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    if metric == "cosine":
        t = torch.nn.functional.normalize(t, p=2, dim=1)
    return t


def _prepare_numpy(x: np.ndarray, metric: str) -> np.ndarray:
    a = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":  # what torch.nn.functional.normalize does: x / max(|x|, 1e-12)
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), np.float32(1e-12))
    return a


def _numpy_chunks(qf: np.ndarray, gf: np.ndarray, metric: str, chunk_size: int
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
    """:func:`iter_distance_chunks` on the CPU with numpy: the torch path's float32 operations, in its order."""
    centre = gallery_centre(gf, metric)
    g = _prepare_numpy(centred(gf, centre, "gallery"), metric)
    g_sq = (g * g).sum(axis=1) if metric == "euclidean" else None
    for start in range(0, qf.shape[0], chunk_size):
        stop = min(start + chunk_size, qf.shape[0])
        q = _prepare_numpy(centred(qf[start:stop], centre, "query"), metric)
        dot = q @ g.T
        if g_sq is not None:
            dist = (q * q).sum(axis=1, keepdims=True) + g_sq[None, :]
            dot *= np.float32(2.0)
            dist -= dot
            np.maximum(dist, np.float32(0.0), out=dist)
            np.sqrt(dist, out=dist)
        else:
            dist = np.subtract(np.float32(1.0), dot, out=dot)
        yield start, stop, dist


def iter_distance_chunks(qf: np.ndarray, gf: np.ndarray, metric: str = "euclidean", *, device: str | None = None,
                         chunk_size: int = 1024) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, distances[start:stop])`` (float32 numpy, chunk x gallery) over query chunks."""
    if metric not in METRICS:
        raise EvaluationError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if chunk_size < 1:
        raise EvaluationError(f"chunk_size must be positive, got {chunk_size}")
    qf = _check_features(qf, "query")
    gf = _check_features(gf, "gallery")
    if qf.shape[1] != gf.shape[1]:
        raise EvaluationError(f"feature dimensions differ: query has {qf.shape[1]}, gallery has {gf.shape[1]}")
    dev = resolve_device(device)
    if dev == "cpu":
        yield from _numpy_chunks(qf, gf, metric, chunk_size)
        return
    import torch

    with torch.no_grad():
        centre = gallery_centre(gf, metric)
        g = _prepare(centred(gf, centre, "gallery"), metric, dev)
        g_sq = (g * g).sum(dim=1) if metric == "euclidean" else None
        for start in range(0, qf.shape[0], chunk_size):
            stop = min(start + chunk_size, qf.shape[0])
            q = _prepare(centred(qf[start:stop], centre, "query"), metric, dev)
            dot = q @ g.T
            if g_sq is not None:
                # euclidean distance: sqrt(clamp(|q|^2 + |g|^2 - 2 q.g, min=0))
                sq = (q * q).sum(dim=1, keepdim=True) + g_sq[None, :] - 2.0 * dot
                dist = sq.clamp_(min=0.0).sqrt_()
            else:
                # cosine distance: 1 - <q/|q|, g/|g|>
                dist = 1.0 - dot
            yield start, stop, dist.to("cpu").numpy().astype(np.float32, copy=False)


def compute_distances(qf: np.ndarray, gf: np.ndarray, metric: str = "euclidean", *, device: str | None = None,
                      chunk_size: int = 4096) -> np.ndarray:
    """The full (queries x gallery) float32 distance matrix, assembled from :func:`iter_distance_chunks`."""
    out: np.ndarray | None = None
    for start, stop, chunk in iter_distance_chunks(qf, gf, metric, device=device, chunk_size=chunk_size):
        if out is None:
            out = np.empty((np.asarray(qf).shape[0], chunk.shape[1]), dtype=np.float32)
        out[start:stop] = chunk
    assert out is not None  # _check_features rejects empty inputs
    return out
