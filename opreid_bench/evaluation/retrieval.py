"""Exact top-k retrieval for any gallery size: chunked over queries and gallery, memory-bounded, stable ties.

Why: a retrieval demo or a tracking pipeline needs the k nearest gallery items of every query, and a 1M-image
gallery does not fit a dense distance matrix. :func:`topk_search` streams over query chunks and, inside each, over
gallery chunks, merging running top-k lists, so memory is bounded by ``memory_mb`` whatever the gallery size.

Neighbour order is defined as *stable by index*: items are ordered by distance, and items at equal distance by
their index (what ``np.argsort(d, kind="stable")`` gives). :func:`stable_topk` gives that order with
``torch.topk`` (fast) and falls back to a full stable sort only for the rare rows whose k-th value is tied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from opreid_bench.errors import EvaluationError

if TYPE_CHECKING:  # pragma: no cover
    import torch

METRICS = ("euclidean", "cosine")


def resolve_device(device: str | None = None) -> torch.device:
    """``device`` as a torch device; ``None`` picks CUDA when one is present, else the CPU.

    An unknown name, or CUDA where there is none, is an :class:`EvaluationError` (one line), not torch's traceback.
    """
    import torch

    from opreid_bench.evaluation.distances import resolve_device as checked_device

    return torch.device(checked_device(device))


def check_finite_distances(d: torch.Tensor | np.ndarray, row0: int = 0, col0: int = 0) -> None:
    """Raise :class:`EvaluationError` when a block of distances holds NaN/inf (e.g. float32 overflow of huge features).

    ``search`` must not write distances that ``evaluate`` would refuse; ``row0``/``col0`` place the block in the
    full query x gallery matrix for the message.
    """
    import torch

    t = torch.as_tensor(d)
    finite = torch.isfinite(t)
    if bool(finite.all()):
        return
    r, c = (int(v) for v in torch.nonzero(~finite)[0].tolist())
    raise EvaluationError(f"distance between query {row0 + r} and gallery {col0 + c} is {float(t[r, c])} (NaN/inf); "
                          "features this large overflow float32 distances: rescale them")


def stable_topk(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest entries of each row of ``values`` ordered by (value, column index).

    Equal to ``np.argsort(values, axis=1, kind="stable")[:, :k]`` (and the matching values). ``torch.topk`` alone
    leaves ties in an arbitrary order and may pick any of several items tied at the k-th place; rows where that
    can happen (the (k+1)-th smallest value equals the k-th) are redone with a full stable sort.
    """
    import torch

    n = values.shape[1]
    k = min(k, n)
    if k == 0:
        empty = values.new_empty((values.shape[0], 0))
        return empty, torch.empty((values.shape[0], 0), dtype=torch.int64, device=values.device)
    # one extra candidate tells whether the k-th place is tied with an item left out
    extra = 1 if k < n else 0
    vals, idx = torch.topk(values, k + extra, dim=1, largest=False, sorted=True)
    if extra:
        bad = (vals[:, k] == vals[:, k - 1]).nonzero().flatten()
        vals, idx = vals[:, :k].contiguous(), idx[:, :k].contiguous()
        if bad.numel():
            sorted_vals, sorted_idx = torch.sort(values[bad], dim=1, stable=True)
            vals[bad] = sorted_vals[:, :k]
            idx[bad] = sorted_idx[:, :k]
    by_index = torch.sort(idx, dim=1).indices
    idx, vals = idx.gather(1, by_index), vals.gather(1, by_index)
    by_value = torch.sort(vals, dim=1, stable=True).indices
    return vals.gather(1, by_value), idx.gather(1, by_value)


def merge_topk(
    best_vals: torch.Tensor, best_idx: torch.Tensor, new_vals: torch.Tensor, new_idx: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge two (value, index)-ordered top-k lists where every index of ``best`` is below every index of ``new``.

    A stable sort by value of ``[best, new]`` then keeps the (value, index) order, so chunked search over the gallery
    in increasing index order gives exactly the unchunked stable top-k.
    """
    import torch

    vals = torch.cat([best_vals, new_vals], dim=1)
    idx = torch.cat([best_idx, new_idx], dim=1)
    order = torch.sort(vals, dim=1, stable=True).indices[:, :k]
    return vals.gather(1, order), idx.gather(1, order)


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """Distances between the rows of ``a`` and ``b`` as a float32 tensor on their device.

    ``euclidean``: ``sqrt(max(|a|^2 + |b|^2 - 2 a.b, 0))``; ``cosine``: ``1 - a.b / (|a| |b|)``.
    """
    import torch

    if metric == "euclidean":
        sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return sq.clamp_(min=0.0).sqrt_()
    if metric == "cosine":
        an = torch.nn.functional.normalize(a, dim=1)
        bn = torch.nn.functional.normalize(b, dim=1)
        return 1.0 - an @ bn.T
    raise EvaluationError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def prepare_features(features: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """``features`` as a 2-D float32 torch tensor; raises :class:`EvaluationError` on a bad shape or NaN/inf."""
    import torch

    t = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    if t.ndim != 2:
        raise EvaluationError(f"{name}: expected a 2-D (items x dim) feature array, got shape {tuple(t.shape)}")
    t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise EvaluationError(f"{name}: features contain NaN or inf")
    return t


def prepare_pair(qf: np.ndarray | torch.Tensor, gf: np.ndarray | torch.Tensor, metric: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Query and gallery features checked (:func:`prepare_features`, the same dimension) and, for euclidean, less the
    gallery's mean (:func:`opreid_bench.evaluation.distances.centred_features`): what every ranking from features
    starts from, so that search and re-ranking rank as ``evaluate`` does."""
    from opreid_bench.evaluation.distances import centred_features

    q = prepare_features(qf, "query features")
    g = prepare_features(gf, "gallery features")
    if q.shape[1] != g.shape[1]:
        raise EvaluationError(f"query dim {q.shape[1]} != gallery dim {g.shape[1]}")
    if metric == "euclidean":
        q_np, g_np = centred_features(q, g, metric)
        q, g = prepare_features(q_np, "query features"), prepare_features(g_np, "gallery features")
    return q, g


@dataclass
class TopK:
    """Top-k search result: ``indices[i, r]`` is the gallery index at rank ``r`` of query ``i`` (0-based)."""

    distances: np.ndarray  # float32, (num_query, k)
    indices: np.ndarray  # int64, (num_query, k)


def _chunk_sizes(num_query: int, num_gallery: int, memory_mb: float) -> tuple[int, int]:
    """Query and gallery chunk sizes whose distance block fits in about ``memory_mb`` (float32 plus temporaries)."""
    budget = max(int(memory_mb * 2**20 / 16), 1 << 16)  # elements; ~4 temporaries of 4 bytes each
    gallery_chunk = min(num_gallery, max(budget // 256, 1024))
    query_chunk = max(1, min(num_query, budget // max(gallery_chunk, 1)))
    return query_chunk, gallery_chunk


def topk_search(
    qf: np.ndarray | torch.Tensor,
    gf: np.ndarray | torch.Tensor,
    k: int,
    *,
    metric: str = "euclidean",
    device: str | None = None,
    memory_mb: float = 256.0,
    query_chunk: int | None = None,
    gallery_chunk: int | None = None,
) -> TopK:
    """Exact k nearest gallery items of every query, ordered by (distance, gallery index).

    Equal to ``np.argsort(dist, axis=1, kind="stable")[:, :k]`` on the full distance matrix, but never holds more
    than a ``query_chunk x gallery_chunk`` block of it (sized from ``memory_mb`` unless given). Euclidean distances
    are taken on the features less the gallery's mean, as ``evaluate`` takes them: features that share a large common
    part would otherwise lose their differences to float32 rounding and rank differently from ``evaluate``.
    """
    import torch

    if metric not in METRICS:
        raise EvaluationError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if k < 1:
        raise EvaluationError(f"top-k: k must be at least 1, got {k}")
    dev = resolve_device(device)
    q, g = prepare_pair(qf, gf, metric)
    nq, ng = q.shape[0], g.shape[0]
    k = min(k, ng)
    auto_q, auto_g = _chunk_sizes(nq, ng, memory_mb)
    query_chunk = query_chunk or auto_q
    gallery_chunk = gallery_chunk or auto_g
    out_d = np.empty((nq, k), dtype=np.float32)
    out_i = np.empty((nq, k), dtype=np.int64)
    g_chunks = [g[g0 : g0 + gallery_chunk].to(dev) for g0 in range(0, ng, gallery_chunk)] if dev.type != "cpu" else None
    with torch.no_grad():
        for q0 in range(0, nq, query_chunk):
            qc = q[q0 : q0 + query_chunk].to(dev)
            best_v = best_i = None
            for n, g0 in enumerate(range(0, ng, gallery_chunk)):
                gc = g_chunks[n] if g_chunks is not None else g[g0 : g0 + gallery_chunk]
                d = pairwise_distances(qc, gc, metric)
                check_finite_distances(d, q0, g0)
                v, i = stable_topk(d, k)
                i = i + g0
                if best_v is None:
                    best_v, best_i = v, i
                else:
                    best_v, best_i = merge_topk(best_v, best_i, v, i, k)
            out_d[q0 : q0 + qc.shape[0]] = best_v.cpu().numpy()
            out_i[q0 : q0 + qc.shape[0]] = best_i.cpu().numpy()
    return TopK(distances=out_d, indices=out_i)


def topk_from_distmat(distmat: np.ndarray, k: int, *, memory_mb: float = 256.0) -> TopK:
    """Top-k of every row of a dense (query x gallery) distance matrix (e.g. re-ranked), stable by index."""
    import torch

    d = np.asarray(distmat)
    if d.ndim != 2 or d.shape[1] == 0:
        raise EvaluationError(f"top-k: expected a non-empty 2-D distance matrix, got shape {d.shape}")
    if k < 1:
        raise EvaluationError(f"top-k: k must be at least 1, got {k}")
    k = min(k, d.shape[1])
    rows = max(1, int(memory_mb * 2**20 / 8) // d.shape[1])
    out_d = np.empty((d.shape[0], k), dtype=np.float32)
    out_i = np.empty((d.shape[0], k), dtype=np.int64)
    for r0 in range(0, d.shape[0], rows):
        block = torch.from_numpy(np.ascontiguousarray(d[r0 : r0 + rows], dtype=np.float32))
        check_finite_distances(block, r0)
        v, i = stable_topk(block, k)
        out_d[r0 : r0 + rows] = v.numpy()
        out_i[r0 : r0 + rows] = i.numpy()
    return TopK(distances=out_d, indices=out_i)
