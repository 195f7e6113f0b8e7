"""Optional approximate nearest-neighbour search through faiss (the ``[faiss]`` extra), for galleries too big for
exact search: top-k retrieval and the neighbour lists of k-reciprocal re-ranking.

Why optional: faiss is a compiled dependency that not every platform has; without it everything in opreid-bench
still works exactly (:mod:`opreid_bench.evaluation.retrieval`), and asking for ANN says how to install it.

Index kinds: ``flat`` (exact brute force inside faiss, a reference point) and ``ivf`` (inverted file: k-means
cells trained on a seeded sample, ``nprobe`` cells visited per query). Distances returned are in the evaluator's
definitions (euclidean, not squared; cosine = 1 - cos), and each row is ordered by (distance, index) like exact
search. faiss-gpu is used when the installed faiss has GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from opreid_bench.errors import EvaluationError, OpreidError
from opreid_bench.evaluation.retrieval import METRICS, TopK, check_finite_distances, prepare_features, topk_search

if TYPE_CHECKING:  # pragma: no cover
    import torch

KINDS = ("flat", "ivf")


class FaissMissingError(OpreidError):
    """Approximate search was asked for but faiss is not installed."""


def require_faiss() -> Any:
    """The ``faiss`` module, or a :class:`FaissMissingError` that says how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise FaissMissingError(
            "approximate search (--ann) needs faiss, which is not installed: "
            "pip install 'opreid-bench[faiss]' (faiss-cpu), or run without --ann for exact search"
        ) from exc
    return faiss


def faiss_available() -> bool:
    """True when faiss can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class AnnConfig:
    """Which faiss index to build: ``kind`` flat or ivf; IVF cells (default ~4 sqrt(n)), cells probed, k-means seed."""

    kind: str = "ivf"
    nlist: int | None = None
    nprobe: int = 32
    seed: int = 0
    train_size: int = 100_000

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EvaluationError(f"unknown ANN index kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.nprobe < 1 or (self.nlist is not None and self.nlist < 1):
            raise EvaluationError(f"ANN nlist/nprobe must be positive, got nlist={self.nlist}, nprobe={self.nprobe}")


def as_config(ann: AnnConfig | str | bool | None) -> AnnConfig:
    """Accept an :class:`AnnConfig`, an index kind name (``"flat"``, ``"ivf"``) or ``True`` (IVF defaults)."""
    if isinstance(ann, AnnConfig):
        return ann
    if ann is True or ann is None:
        return AnnConfig()
    if isinstance(ann, str):
        return AnnConfig(kind=ann)
    raise EvaluationError(f"ann must be an AnnConfig, 'flat' or 'ivf', got {ann!r}")


class AnnIndex:
    """A faiss index over ``base`` (items x dim) answering k-nearest queries in the evaluator's metric."""

    def __init__(self, base: np.ndarray, metric: str = "euclidean", config: AnnConfig | str | None = None) -> None:
        faiss = require_faiss()
        if metric not in METRICS:
            raise EvaluationError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        self.config = as_config(config)
        self.metric = metric
        base = self._prepare(base)
        self.size, dim = base.shape
        faiss_metric = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
        if self.config.kind == "flat":
            index = faiss.IndexFlatL2(dim) if metric == "euclidean" else faiss.IndexFlatIP(dim)
        else:
            nlist = self.config.nlist or max(1, min(int(4 * math.sqrt(self.size)), self.size // 39 or 1))
            quantizer = faiss.IndexFlatL2(dim) if metric == "euclidean" else faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
            index.cp.seed = self.config.seed
            rng = np.random.default_rng(self.config.seed)
            n_train = min(self.size, max(self.config.train_size, 39 * nlist))
            sample = base if n_train == self.size else base[np.sort(rng.choice(self.size, n_train, replace=False))]
            index.train(sample)
            index.nprobe = min(self.config.nprobe, nlist)
        if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:  # pragma: no cover - needs faiss-gpu
            index = faiss.index_cpu_to_all_gpus(index)
        index.add(base)
        self._index = index

    def _prepare(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        arr = prepare_features(x, "ANN features").numpy()
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if self.metric == "cosine":
            norms = np.linalg.norm(arr, axis=1, keepdims=True)
            arr = arr / np.maximum(norms, 1e-12)
        return arr

    def search(self, queries: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices), each (num_queries, k), rows ordered by (distance, index); -1 where none found."""
        q = self._prepare(queries)
        k = min(k, self.size)
        raw, idx = self._index.search(q, k)
        if self.metric == "euclidean":
            dist = np.sqrt(np.maximum(raw, 0.0)).astype(np.float32)  # faiss gives squared L2
        else:
            dist = (1.0 - raw).astype(np.float32)  # inner product of normalised vectors -> cosine distance
        dist[idx < 0] = np.inf
        by_index = np.argsort(np.where(idx < 0, np.iinfo(np.int64).max, idx), axis=1, kind="stable")
        idx, dist = np.take_along_axis(idx, by_index, 1), np.take_along_axis(dist, by_index, 1)
        by_value = np.argsort(dist, axis=1, kind="stable")
        return np.take_along_axis(dist, by_value, 1), np.take_along_axis(idx, by_value, 1).astype(np.int64)


def ann_topk(
    qf: np.ndarray, gf: np.ndarray, k: int, *, metric: str = "euclidean", ann: AnnConfig | str | None = None
) -> TopK:
    """Approximate k nearest gallery items of every query (same layout as :func:`retrieval.topk_search`).

    Rows where the index found fewer than k items (IVF with few probed cells) are completed by exact search.
    """
    if k < 1:
        raise EvaluationError(f"top-k: k must be at least 1, got {k}")
    from opreid_bench.evaluation.distances import centred_features

    qf, gf = centred_features(qf, gf, metric)  # as the evaluator takes euclidean distances
    index = AnnIndex(gf, metric, ann)
    dist, idx = index.search(qf, k)
    missing = np.flatnonzero((idx < 0).any(axis=1))
    if missing.size:
        exact = topk_search(np.asarray(qf)[missing], gf, k, metric=metric)
        dist[missing], idx[missing] = exact.distances, exact.indices
    check_finite_distances(dist)
    return TopK(distances=dist, indices=idx)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Fraction of the exact top-k indices that the approximate top-k lists contain (mean over rows)."""
    if approx.shape[0] != exact.shape[0]:
        raise EvaluationError(f"recall: {approx.shape[0]} approximate rows vs {exact.shape[0]} exact rows")
    hits = sum(np.isin(exact[i], approx[i]).sum() for i in range(exact.shape[0]))
    return float(hits / max(1, exact.size))


class AnnNeighbourSource:
    """Re-ranking source whose neighbour lists come from faiss (the rest from the exact feature source).

    The row normaliser of re-ranking (the largest squared distance from each item) is found with a faiss
    maximum-inner-product search on augmented vectors, ``max_j |x_i - x_j|^2 = |x_i|^2 + max_j [x_i, 1].[-2 x_j,
    |x_j|^2]`` (cosine: ``1 + max_j (-x_i).x_j``), on an index of the same kind.
    """

    def __init__(self, exact: Any, ann: AnnConfig | str | bool | None) -> None:
        self.exact = exact
        self.config = as_config(ann)
        self.n, self.nq, self.ng, self.device = exact.n, exact.nq, exact.ng, exact.device

    def neighbours(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        faiss = require_faiss()
        feats = self.exact.feats.cpu().numpy()  # normalised already for cosine
        metric = self.exact.metric
        index = AnnIndex(feats, metric, self.config)
        _, idx = index.search(feats, num)
        missing = np.flatnonzero((idx < 0).any(axis=1))
        if missing.size:
            idx[missing] = topk_search(feats[missing], feats, num, metric=metric).indices
        # the row normaliser: the farthest item from each item, by max inner product on augmented vectors
        norms = (feats.astype(np.float64) ** 2).sum(1)
        if metric == "euclidean":
            base = np.hstack([-2.0 * feats, norms[:, None].astype(np.float32)]).astype(np.float32)
            query = np.hstack([feats, np.ones((self.n, 1), np.float32)]).astype(np.float32)
        else:
            base, query = feats, -feats
        far_cfg = AnnConfig("flat") if self.config.kind == "flat" else self.config
        far = _inner_product_index(faiss, base, far_cfg)
        _, far_idx = far.search(np.ascontiguousarray(query), 1)
        far_idx = np.where(far_idx[:, 0] < 0, np.arange(self.n), far_idx[:, 0])
        rows = torch.arange(self.n, device=self.device)
        scale = self.exact.pair_sq(rows, torch.from_numpy(far_idx).to(self.device))
        ranks = torch.from_numpy(idx).to(self.device)
        # largest squared distance seen anywhere (farthest item or a listed neighbour) is the row's normaliser
        listed = self.exact.pair_sq(rows.repeat_interleave(num), ranks.reshape(-1)).view(self.n, num)
        scale = torch.maximum(scale, listed.max(dim=1).values).clamp_(min=torch.finfo(torch.float32).tiny)
        # neighbour order as exact search: by (normalised value, index)
        m = listed / scale[:, None]
        by_index = torch.sort(ranks, dim=1).indices
        ranks, m = ranks.gather(1, by_index), m.gather(1, by_index)
        ranks = ranks.gather(1, torch.sort(m, dim=1, stable=True).indices)
        return ranks, scale

    def pair_sq(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        return self.exact.pair_sq(i, j)

    def query_gallery_sq(self, q0: int, q1: int) -> torch.Tensor:
        return self.exact.query_gallery_sq(q0, q1)


def _inner_product_index(faiss: Any, base: np.ndarray, config: AnnConfig) -> Any:
    """A max-inner-product faiss index (flat or IVF) over ``base``."""
    base = np.ascontiguousarray(base, dtype=np.float32)
    n, dim = base.shape
    if config.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = config.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = config.seed
        rng = np.random.default_rng(config.seed)
        n_train = min(n, max(config.train_size, 39 * nlist))
        index.train(base if n_train == n else base[np.sort(rng.choice(n, n_train, replace=False))])
        index.nprobe = min(config.nprobe, nlist)
    index.add(base)
    return index
