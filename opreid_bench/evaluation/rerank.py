"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), equal to the authors' formulation, sparse and memory-bounded.

The reference ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3)`` builds the dense
(q+g) x (q+g) matrix, argsorts every row of it and loops in Python; at Market-1501 scale that is ~9 GB and minutes.
This module computes the same numbers from what they actually depend on:

1. ``M``: squared distances divided by their column maximum, transposed (so row ``i`` of ``M`` is column ``i`` of
   the squared distance matrix over its maximum). Only the top ``k1 + 1`` neighbour lists of every row are kept
   (``torch.topk`` over row chunks), plus ``M`` at the few pairs the weights need.
2. k-reciprocal sets ``R(i, k1)`` (``j`` in the top ``k1+1`` of ``i`` and ``i`` in the top ``k1+1`` of ``j``),
   expanded with the 2/3 rule on the ``round(k1/2)``-reciprocal sets of their members; vectorised over rows.
3. ``V``: Gaussian weights ``exp(-M[i, j])`` over the expanded set, normalised per row (a sparse CSR matrix).
4. Local query expansion: ``V_qe[i] = mean(V[top k2 of i])`` (sparse).
5. Jaccard distance, only for the query rows against the gallery columns, through an inverted index of the gallery
   rows of ``V_qe``: ``1 - sum min(V_i, V_j) / (2 - sum min(V_i, V_j))``, in query chunks.
6. ``final = (1 - lambda) * jaccard + lambda * M`` on the query x gallery block.

Neighbour order is *stable by index* (ties broken by the lower index, ``np.argsort(kind="stable")``); the
reference's default quicksort leaves tied neighbours in an unspecified order, so on inputs with exact ties the two
can differ only by that choice. Everything except the query x gallery output is O((q+g) * k1^2) memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from opreid_bench.errors import EvaluationError
from opreid_bench.evaluation.retrieval import (
    METRICS,
    prepare_pair,
    resolve_device,
    stable_topk,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

_ROW_BLOCK_ELEMENTS = 1 << 24  # ~16M distances per row chunk (64 MB float32, a few temporaries of that size)
_TRANSPOSE_TILE = 256
_JACCARD_PAIR_BUDGET = 1 << 23  # inverted-index pairs expanded at once in the Jaccard step


@dataclass
class _Sparse:
    """A CSR matrix with ``n`` rows: row ``i`` holds ``indices[indptr[i]:indptr[i+1]]`` (sorted) and ``data``."""

    indptr: torch.Tensor  # int64 (n + 1,)
    indices: torch.Tensor  # int64 (nnz,)
    data: torch.Tensor  # float32 (nnz,)

    def row_ids(self) -> torch.Tensor:
        import torch

        counts = self.indptr[1:] - self.indptr[:-1]
        return torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)


def _gather_rows(indptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of all entries of CSR ``rows`` (in order) and, for each, the position in ``rows`` it came from."""
    import torch

    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    owner = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), counts)
    offsets = torch.cumsum(counts, 0) - counts
    pos = starts[owner] + torch.arange(owner.numel(), device=rows.device) - offsets[owner]
    return pos, owner


# --------------------------------------------------------------------------------------------------------------
# Sources of squared distances: dense matrices (the drop-in API) or features (computed on the fly).
# Convention: ``sq_rows(r0, r1)`` returns rows r0..r1 of S^T where S is the (q+g)^2 squared distance matrix
# [[q_q, q_g], [q_g^T, g_g]]^2, i.e. row i is column i of S, exactly what the reference normalises and ranks.
# --------------------------------------------------------------------------------------------------------------


def _row_step(n: int) -> int:
    return max(1, _ROW_BLOCK_ELEMENTS // n)


class _DenseSource:
    """Squared distances read from the three dense matrices of the reference API (any real dtype).

    Row blocks are written into one reused buffer (fresh multi-MB allocations per block cost more than the work,
    through page faults) by ``np.square(..., out=float32 buffer)``: the square is taken in the input precision and
    rounded once, exactly ``np.power(x, 2).astype(np.float32)``. Columns are copied in square tiles.
    """

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, device: torch.device) -> None:
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.nq, self.ng = q_g.shape
        self.n = self.nq + self.ng
        self.device = device

    @staticmethod
    def _square_into(out: np.ndarray, src: np.ndarray, transpose: bool) -> None:
        """``out[:] = np.power(src.T if transpose else src, 2)`` (float32 out), tile by tile when transposing."""
        if not transpose:
            np.square(src, out=out)
            return
        for r0 in range(0, src.shape[0], _TRANSPOSE_TILE):
            tile = src[r0 : r0 + _TRANSPOSE_TILE]
            np.square(tile.T, out=out[:, r0 : r0 + tile.shape[0]])

    def row_blocks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        import torch

        step = _row_step(self.n)
        buf = np.empty((min(step, max(self.nq, self.ng)), self.n), dtype=np.float32)
        nq = self.nq
        for r0 in range(0, nq, step):  # query columns of S: [q_q[:, i]; q_g[i, :]]
            c = min(step, nq - r0)
            self._square_into(buf[:c, :nq], self.q_q[:, r0 : r0 + c], transpose=True)
            self._square_into(buf[:c, nq:], self.q_g[r0 : r0 + c], transpose=False)
            yield r0, r0 + c, torch.from_numpy(buf[:c]).to(self.device)
        for b0 in range(0, self.ng, step):  # gallery columns of S: [q_g[:, b]; g_g[:, b]]
            c = min(step, self.ng - b0)
            self._square_into(buf[:c, :nq], self.q_g[:, b0 : b0 + c], transpose=True)
            self._square_into(buf[:c, nq:], self.g_g[:, b0 : b0 + c], transpose=True)
            yield nq + b0, nq + b0 + c, torch.from_numpy(buf[:c]).to(self.device)

    def pair_sq(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """S[j, i] (= row i, column j of S^T) for index pairs."""
        import torch

        i_np, j_np = i.cpu().numpy(), j.cpu().numpy()
        vals = np.empty(i_np.shape[0], dtype=np.result_type(self.q_g.dtype, self.q_q.dtype, self.g_g.dtype))
        nq = self.nq
        iq, jq = i_np < nq, j_np < nq
        m = iq & jq
        vals[m] = self.q_q[j_np[m], i_np[m]]
        m = iq & ~jq
        vals[m] = self.q_g[i_np[m], j_np[m] - nq]
        m = ~iq & jq
        vals[m] = self.q_g[j_np[m], i_np[m] - nq]
        m = ~iq & ~jq
        vals[m] = self.g_g[j_np[m] - nq, i_np[m] - nq]
        out = np.empty(vals.shape, dtype=np.float32)
        np.square(vals, out=out)
        return torch.from_numpy(out).to(i.device)

    def query_gallery_sq(self, q0: int, q1: int) -> torch.Tensor:
        """S^T[q0:q1, q:] = q_g[q0:q1]^2."""
        import torch

        out = np.empty((q1 - q0, self.ng), dtype=np.float32)
        np.square(self.q_g[q0:q1], out=out)
        return torch.from_numpy(out).to(self.device)


class _FeatureSource:
    """Squared distances computed from features in row chunks, with the evaluator's float operations.

    ``euclidean``: ``sqrt(max((|a|^2 + |b|^2) - 2 a.b, 0))``; ``cosine``: ``1 - a.b`` on L2-normalised features
    (see :mod:`opreid_bench.evaluation.distances`); then squared, as the reference squares its inputs.
    """

    def __init__(self, qf: torch.Tensor, gf: torch.Tensor, metric: str, device: torch.device) -> None:
        import torch

        self.nq, self.ng = qf.shape[0], gf.shape[0]
        self.n = self.nq + self.ng
        self.metric = metric
        self.device = device
        feats = torch.cat([qf, gf], dim=0).to(device)
        if metric == "cosine":
            feats = torch.nn.functional.normalize(feats, p=2, dim=1)
        self.feats = feats
        self.norms = (feats * feats).sum(dim=1)
        self._qg_cache: np.ndarray | None = None

    def _rows_into(self, r0: int, r1: int, cols: slice, dot: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
        """Squared distances of items r0..r1 to items ``cols``, computed in the buffers ``dot`` and ``tmp``."""
        import torch

        torch.mm(self.feats[r0:r1], self.feats[cols].T, out=dot)
        if self.metric == "euclidean":
            # euclidean distance: sqrt(clamp((|a|^2 + |b|^2) - 2 a.b, min=0)), same rounding as the evaluator
            torch.add(self.norms[r0:r1, None], self.norms[None, cols], out=tmp)
            tmp.sub_(dot, alpha=2.0).clamp_(min=0.0).sqrt_()
            return tmp.mul_(tmp)
        dot.neg_().add_(1.0)  # cosine distance: 1 - a.b on normalised features
        return dot.mul_(dot)

    def row_blocks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        import torch

        step = _row_step(self.n)
        rows = min(step, self.n)
        dot = torch.empty((rows, self.n), dtype=torch.float32, device=self.device)
        tmp = torch.empty_like(dot)
        self._qg_cache = np.empty((self.nq, self.ng), dtype=np.float32)
        for r0 in range(0, self.n, step):
            r1 = min(r0 + step, self.n)
            sq = self._rows_into(r0, r1, slice(None), dot[: r1 - r0], tmp[: r1 - r0])
            if r0 < self.nq:  # keep the query x gallery block: it is the output's size anyway
                top = min(r1, self.nq)
                self._qg_cache[r0:top] = sq[: top - r0, self.nq :].cpu().numpy()
            yield r0, r1, sq

    def pair_sq(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        import torch

        out = torch.empty(i.numel(), dtype=torch.float32, device=self.device)
        step = max(1, (1 << 22) // max(1, self.feats.shape[1]))
        for s in range(0, i.numel(), step):
            a, b = i[s : s + step], j[s : s + step]
            dot = (self.feats[a] * self.feats[b]).sum(1)
            if self.metric == "euclidean":
                d = ((self.norms[a] + self.norms[b]) - 2.0 * dot).clamp_(min=0.0).sqrt_()
            else:
                d = 1.0 - dot
            out[s : s + step] = d * d
        return out

    def output_buffer(self) -> np.ndarray | None:
        """The cached (q x g) block, reusable for the output once its rows have been read."""
        return self._qg_cache

    def query_gallery_sq(self, q0: int, q1: int) -> torch.Tensor:
        import torch

        if self._qg_cache is not None:
            return torch.from_numpy(self._qg_cache[q0:q1]).to(self.device)
        dot = torch.empty((q1 - q0, self.ng), dtype=torch.float32, device=self.device)
        return self._rows_into(q0, q1, slice(self.nq, None), dot, torch.empty_like(dot)).clone()


# --------------------------------------------------------------------------------------------------------------
# The algorithm, on top of a source.
# --------------------------------------------------------------------------------------------------------------


def _neighbours(source: Any, num: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``num`` neighbour lists of every row of M (stable order) and every row's normaliser (column max of S)."""
    import torch

    if hasattr(source, "neighbours"):  # approximate lists from an ANN index
        return source.neighbours(num)
    ranks = torch.empty((source.n, num), dtype=torch.int64, device=source.device)
    scale = torch.empty(source.n, dtype=torch.float32, device=source.device)
    for r0, r1, sq in source.row_blocks():
        mx = sq.max(dim=1).values
        if bool((mx == 0).any()):  # the published algorithm divides by it: NaN everywhere
            raise EvaluationError("re-ranking needs features that differ: every query and gallery feature is the "
                                  "same, so every distance is 0 (evaluate without --rerank ranks such ties)")
        # original_dist = S^T / max(S, axis=0): row i divided by the maximum of column i of S
        m = sq.div_(mx[:, None])
        ranks[r0:r1] = stable_topk(m, num)[1]
        scale[r0:r1] = mx
    return ranks, scale


def _expanded_sets(ranks: torch.Tensor, k1: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR (indptr, sorted indices) of every row's k-reciprocal set expanded with the 2/3 rule."""
    import torch

    n = ranks.shape[0]
    dev = ranks.device
    fwd = ranks[:, : k1 + 1].contiguous()
    kh = int(np.around(k1 / 2.0)) + 1
    half = ranks[:, :kh].contiguous()
    recip = torch.empty(fwd.shape, dtype=torch.bool, device=dev)
    half_recip = torch.empty(half.shape, dtype=torch.bool, device=dev)
    step = max(1, (1 << 22) // ((k1 + 1) * (k1 + 1) * kh))
    for r0 in range(0, n, step):
        rows = torch.arange(r0, min(r0 + step, n), device=dev)[:, None, None]
        # R(i, k1): j in top-(k1+1) of i and i in top-(k1+1) of j
        recip[r0 : r0 + step] = (fwd[fwd[r0 : r0 + step]] == rows).any(-1)
        half_recip[r0 : r0 + step] = (half[half[r0 : r0 + step]] == rows).any(-1)
    counts = torch.empty(n, dtype=torch.int64, device=dev)
    pieces: list[torch.Tensor] = []
    for r0 in range(0, n, step):
        f = fwd[r0 : r0 + step]  # c x A
        mf = recip[r0 : r0 + step]  # c x A
        c = f.shape[0]
        cand = half[f]  # c x A x kh: each candidate's half-size neighbour list
        mc = half_recip[f] & mf[:, :, None]  # its round(k1/2)-reciprocal set (only for members of R(i, k1))
        # membership of the candidates' neighbours in R(i, k1): binary search in the sorted set (n = not a member)
        r_set = torch.sort(torch.where(mf, f, n), dim=1).values
        flat = cand.reshape(c, -1)
        at = torch.searchsorted(r_set, flat).clamp_(max=r_set.shape[1] - 1)
        in_r = (r_set.gather(1, at) == flat).view(cand.shape)
        inter = (in_r & mc).sum(-1)
        size = mc.sum(-1)
        # expansion rule: |R(c, k1/2) & R(i, k1)| > 2/3 |R(c, k1/2)|
        accept = mf & (inter.double() > (2.0 / 3.0) * size.double())
        members = torch.cat(
            [torch.where(mf, f, n), torch.where(accept[:, :, None] & mc, cand, n).reshape(c, -1)], dim=1
        )
        members = torch.sort(members, dim=1).values
        keep = members < n
        keep[:, 1:] &= members[:, 1:] != members[:, :-1]
        counts[r0 : r0 + c] = keep.sum(1)
        pieces.append(members[keep])
    indptr = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    indptr[1:] = torch.cumsum(counts, 0)
    return indptr, torch.cat(pieces)


def _gaussian_weights(source: Any, indptr: torch.Tensor, indices: torch.Tensor, scale: torch.Tensor) -> _Sparse:
    """V[i, j] = exp(-M[i, j]) / sum_j exp(-M[i, j]) over the expanded set of row i."""
    import torch

    sp = _Sparse(indptr, indices, torch.empty(0))
    rows = sp.row_ids()
    m = source.pair_sq(rows, indices) / scale[rows]
    w = torch.exp(-m)
    total = torch.zeros(indptr.numel() - 1, dtype=torch.float32, device=w.device).index_add_(0, rows, w)
    sp.data = w / total[rows]
    return sp


def _query_expansion(v: _Sparse, ranks: torch.Tensor, k2: int) -> _Sparse:
    """V_qe[i] = mean of the rows of V at the top-k2 neighbours of i (local query expansion)."""
    import torch

    if k2 == 1:
        return v
    n = ranks.shape[0]
    dev = ranks.device
    nbrs = ranks[:, :k2]
    counts = torch.empty(n, dtype=torch.int64, device=dev)
    idx_parts: list[torch.Tensor] = []
    val_parts: list[torch.Tensor] = []
    avg_nnz = max(1, v.indices.numel() // max(1, n))
    step = max(1, (1 << 22) // (k2 * avg_nnz))
    for r0 in range(0, n, step):
        src = nbrs[r0 : r0 + step].reshape(-1)
        c = src.numel() // k2
        pos, owner = _gather_rows(v.indptr, src)
        key = (owner // k2) * n + v.indices[pos]
        uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
        vals = torch.zeros(uniq.numel(), dtype=torch.float32, device=dev).index_add_(0, inverse, v.data[pos])
        counts[r0 : r0 + c] = torch.bincount(uniq // n, minlength=c)
        idx_parts.append(uniq % n)
        val_parts.append(vals / k2)
    indptr = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    indptr[1:] = torch.cumsum(counts, 0)
    return _Sparse(indptr, torch.cat(idx_parts), torch.cat(val_parts))


def _jaccard_blocks(v: _Sparse, nq: int, ng: int) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield (q0, q1, sum_k min(V[i, k], V[q + b, k])) for query rows i in [q0, q1) and all gallery items b."""
    import torch

    dev = v.indices.device
    n = nq + ng
    rid = v.row_ids()
    start = int(v.indptr[nq])
    g_rows = rid[start:] - nq
    g_cols = v.indices[start:]
    g_vals = v.data[start:]
    order = torch.sort(g_cols, stable=True).indices  # inverted index: column -> gallery rows holding it
    inv_rows, inv_vals = g_rows[order], g_vals[order]
    colptr = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    colptr[1:] = torch.cumsum(torch.bincount(g_cols, minlength=n), 0)
    col_count = colptr[1:] - colptr[:-1]
    # work per query row = number of (query entry, gallery row) pairs it expands to
    q_entries = v.indices[: int(v.indptr[nq])]
    q_work = torch.zeros(nq, dtype=torch.int64, device=dev).index_add_(
        0, rid[:start], col_count[q_entries]
    )
    cum = torch.cumsum(q_work, 0).cpu().numpy()
    max_rows = max(1, (1 << 24) // max(1, ng))
    q0 = 0
    while q0 < nq:
        base = cum[q0 - 1] if q0 else 0
        q1 = int(np.searchsorted(cum, base + _JACCARD_PAIR_BUDGET, side="right"))
        q1 = min(max(q1, q0 + 1), q0 + max_rows, nq)
        out = torch.zeros((q1 - q0) * ng, dtype=torch.float32, device=dev)
        e0, e1 = int(v.indptr[q0]), int(v.indptr[q1])
        cols = v.indices[e0:e1]
        a = v.data[e0:e1]
        local = rid[e0:e1] - q0
        pos, owner = _gather_rows(colptr, cols)
        # Jaccard numerator: sum over shared k of min(V[i, k], V[j, k])
        vals = torch.minimum(a[owner], inv_vals[pos])
        out.index_add_(0, local[owner] * ng + inv_rows[pos], vals)
        yield q0, q1, out.view(q1 - q0, ng)
        q0 = q1


def _rerank(source: Any, k1: int, k2: int, lambda_value: float) -> np.ndarray:
    import torch

    _check_params(k1, k2, lambda_value, source.n)
    with torch.no_grad():
        ranks, scale = _neighbours(source, max(k1 + 1, k2))
        indptr, indices = _expanded_sets(ranks, k1)
        v = _gaussian_weights(source, indptr, indices, scale)
        v = _query_expansion(v, ranks, k2)
        del ranks, indptr, indices
        # the feature source keeps S^T[:q, q:] from the neighbour pass; each block of it is read before it is
        # overwritten by the final distances, so the output needs no second q x g array
        out = getattr(source, "output_buffer", lambda: None)()
        if out is None:
            out = np.empty((source.nq, source.ng), dtype=np.float32)
        for q0, q1, shared in _jaccard_blocks(v, source.nq, source.ng):
            # Jaccard distance (Zhong et al. 2017): d_J = 1 - sum min(V_p, V_g) / sum max(V_p, V_g) = 1 - t / (2 - t)
            jaccard = 1.0 - shared / (2.0 - shared)
            original = source.query_gallery_sq(q0, q1) / scale[q0:q1, None]
            # final distance (Zhong et al. 2017): d* = (1 - lambda) d_J + lambda d
            final = jaccard * (1.0 - lambda_value) + original * lambda_value
            out[q0:q1] = final.cpu().numpy()
    return out


def _check_params(k1: int, k2: int, lambda_value: float, n: int) -> None:
    if k1 < 1 or k2 < 1:
        raise EvaluationError(f"re-ranking needs k1 >= 1 and k2 >= 1, got k1={k1}, k2={k2}")
    if max(k1 + 1, k2) > n:
        raise EvaluationError(f"re-ranking needs more than k1={k1} (and k2={k2}) items, got {n} query+gallery items")
    if not (0.0 <= lambda_value <= 1.0) or math.isnan(lambda_value):
        raise EvaluationError(f"re-ranking lambda must be within [0, 1], got {lambda_value}")


def re_ranking(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    device: str | None = None,
) -> np.ndarray:
    """Drop-in for the authors' ``re_ranking``: the re-ranked (query x gallery) float32 distance matrix.

    Same inputs and output as the reference (equal to 1e-5, neighbour ties broken by index), without its dense
    (q+g)^2 intermediates: memory is the inputs plus the output plus O((q+g) k1^2).
    """
    q_g, q_q, g_g = (np.asarray(x) for x in (q_g_dist, q_q_dist, g_g_dist))
    nq, ng = q_g.shape if q_g.ndim == 2 else (-1, -1)
    if q_g.ndim != 2 or q_q.shape != (nq, nq) or g_g.shape != (ng, ng):
        raise EvaluationError(
            f"re_ranking: shapes do not fit: q_g {q_g.shape}, q_q {q_q.shape}, g_g {g_g.shape} "
            "(expected (q, g), (q, q), (g, g))"
        )
    for name, x in (("q_g_dist", q_g), ("q_q_dist", q_q), ("g_g_dist", g_g)):
        if x.dtype.kind not in "fiu":
            raise EvaluationError(f"re_ranking: {name} must hold real numbers, got dtype {x.dtype}")
    return _rerank(_DenseSource(q_g, q_q, g_g, resolve_device(device)), k1, k2, lambda_value)


def rerank_features(
    qf: np.ndarray,
    gf: np.ndarray,
    *,
    metric: str = "euclidean",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    device: str | None = None,
    ann: Any = None,
) -> np.ndarray:
    """Re-ranked (query x gallery) distances straight from features, never building a (q+g)^2 matrix.

    Equals ``re_ranking(d(qf, gf), d(qf, qf), d(gf, gf), k1, k2, lambda_value)`` with ``d`` the evaluator's
    ``metric`` (``euclidean`` or ``cosine``). ``ann`` (``"flat"``, ``"ivf"`` or an
    :class:`opreid_bench.evaluation.ann.AnnConfig`) takes the neighbour lists from faiss instead of exact search,
    for galleries where the exact all-pairs pass is too slow; the result is then approximate.
    """
    if metric not in METRICS:
        raise EvaluationError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    q, g = prepare_pair(qf, gf, metric)  # euclidean: less the gallery's mean, as the evaluator
    dev = resolve_device(device)
    source = _FeatureSource(q, g, metric, dev)
    if ann is not None:
        from opreid_bench.evaluation.ann import AnnNeighbourSource

        source = AnnNeighbourSource(source, ann)
    return _rerank(source, k1, k2, lambda_value)


def rerank_report(
    query: Any,
    gallery: Any,
    *,
    metric: str = "euclidean",
    junk: str = "market",
    max_rank: int = 50,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    bootstrap: int = 0,
    seed: int = 0,
    device: str | None = None,
    ann: Any = None,
) -> Any:
    """The evaluator's report (overall, occluded breakdown, bootstrap CIs) on re-ranked distances.

    ``query``/``gallery`` are :class:`~opreid_bench.evaluation.features.FeatureSet`. Re-ranking uses the whole
    gallery as context; the holistic/occluded gallery rows restrict the columns of that re-ranked matrix. The
    ranking metrics come from ``evaluate_distmat`` on row chunks, merged exactly.
    """
    from opreid_bench.evaluation.evaluator import evaluate_distance_chunks

    for side, fs in (("query", query), ("gallery", gallery)):
        bad = fs.problems()
        if bad:
            raise EvaluationError(f"{side} {bad[0]}")
    dist = rerank_features(query.features, gallery.features, metric=metric, k1=k1, k2=k2,
                           lambda_value=lambda_value, device=device, ann=ann)
    rows = max(1, (1 << 24) // max(1, dist.shape[1]))
    chunks = ((s, min(s + rows, dist.shape[0]), dist[s:s + rows]) for s in range(0, dist.shape[0], rows))
    return evaluate_distance_chunks(chunks, query, gallery, metric=metric, junk=junk, max_rank=max_rank,
                                    bootstrap=bootstrap, seed=seed)
