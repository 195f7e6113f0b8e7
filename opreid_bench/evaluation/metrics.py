"""Ranking metrics (CMC, mAP, mINP) from a query x gallery distance matrix, equal to ``eval_market1501``.

Semantics (the de-facto standard of fast-reid / torchreid):

- the gallery is ordered by ascending distance, ties keep gallery order (a stable sort);
- ``junk="market"``: gallery items with the same pid AND the same camid as the query are removed; ``junk="none"``
  removes nothing (cross-set protocols such as Occluded-REID);
- a query with no remaining true match is skipped (and counted);
- CMC rank-k: fraction of valid queries whose first true match is within the top k;
- AP: mean over the true matches of the precision at each of them; mAP is its mean over valid queries;
- INP: (number of true matches) / (1-based rank of the last true match); mINP is its mean over valid queries.

How it avoids the full sort (what the standard implementations pay for): only the true matches and the junk of a
query (its same-pid items, ~20 at Market scale) need a rank. Every item that precedes a true match has a distance
<= the largest true-match distance ``t_max``, so one vectorised pass ``row <= t_max`` keeps the few candidates, and
the stable rank of a same-pid item at gallery index ``j`` with distance ``t`` is the number of candidates ``c`` with
``d_c < t`` or ``d_c == t and c < j``. Without ties (checked exactly per query: no candidate equals a target's
distance except the target itself) that is ``#{c: d_c <= t} - 1``; a query with ties sorts its candidates stably.
Junk ranked before a true match is subtracted afterwards. Nothing of size q x g is ever allocated; the work per
query is one pass over its row plus (#same-pid items x #candidates) comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from opreid_bench.errors import EvaluationError

JUNK_MODES = ("market", "none")
# above this many (target x candidate) comparisons for one query, sorting its candidates is cheaper than counting
_MAX_PAIRWISE = 1 << 21


@dataclass
class RankingResult:
    """Metrics of one evaluation plus the per-query values they are means of (for bootstrap and breakdowns)."""

    cmc: np.ndarray  # (max_rank,) float64, fraction of valid queries matched within top k
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int
    ap: np.ndarray  # (num_valid,) per-query AP
    inp: np.ndarray  # (num_valid,) per-query INP
    first_hit: np.ndarray  # (num_valid,) 0-based rank of the first true match (after junk removal)
    valid_query_index: np.ndarray  # indices (into the query list) of the valid queries

    @property
    def max_rank(self) -> int:
        return int(self.cmc.shape[0])

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based); NaN when there is no valid query."""
        if self.num_valid_queries == 0:
            return math.nan
        return float(np.count_nonzero(self.first_hit < k) / self.num_valid_queries)

    def to_dict(self) -> dict:
        """``rank1, rank5, rank10, mAP, mINP`` as fractions (None when no query is valid) and the query counts."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "rank1": num(self.rank(1)),
            "rank5": num(self.rank(5)),
            "rank10": num(self.rank(10)),
            "mAP": num(self.mAP),
            "mINP": num(self.mINP),
            "num_valid_queries": int(self.num_valid_queries),
            "num_skipped_queries": int(self.num_skipped_queries),
        }

    @classmethod
    def from_per_query(cls, first_hit: np.ndarray, ap: np.ndarray, inp: np.ndarray, valid_query_index: np.ndarray,
                       num_queries: int, max_rank: int) -> RankingResult:
        """Build a result from per-query values (the one place where the means are taken, so merges are exact)."""
        first_hit = np.asarray(first_hit, dtype=np.int64)
        ap = np.asarray(ap, dtype=np.float64)
        inp = np.asarray(inp, dtype=np.float64)
        valid_query_index = np.asarray(valid_query_index, dtype=np.int64)
        n = int(first_hit.shape[0])
        if n:
            # CMC, rank-k = #{valid queries with first hit at 0-based rank < k} / #valid
            hits = np.bincount(np.minimum(first_hit, max_rank), minlength=max_rank + 1)[:max_rank]
            cmc = np.cumsum(hits) / n
            m_ap, m_inp = float(np.mean(ap)), float(np.mean(inp))
        else:
            cmc = np.zeros(max_rank, dtype=np.float64)
            m_ap = m_inp = math.nan
        return cls(cmc=cmc.astype(np.float64), mAP=m_ap, mINP=m_inp, num_valid_queries=n,
                   num_skipped_queries=int(num_queries - n), ap=ap, inp=inp, first_hit=first_hit,
                   valid_query_index=valid_query_index)

    def subset(self, query_mask: np.ndarray) -> RankingResult:
        """The result restricted to the queries where ``query_mask`` (over the full query list) is true."""
        query_mask = np.asarray(query_mask, dtype=bool)
        keep = query_mask[self.valid_query_index]
        return RankingResult.from_per_query(self.first_hit[keep], self.ap[keep], self.inp[keep],
                                            self.valid_query_index[keep], int(query_mask.sum()), self.max_rank)


def merge_results(parts: Sequence[tuple[int, int, RankingResult]], max_rank: int | None = None) -> RankingResult:
    """Merge results of consecutive query chunks ``(start, stop, result)`` into one, exactly as if evaluated at once."""
    if not parts:
        raise EvaluationError("nothing to merge: no query chunk was evaluated")
    max_rank = parts[0][2].max_rank if max_rank is None else max_rank
    num_queries = sum(stop - start for start, stop, _ in parts)
    return RankingResult.from_per_query(
        np.concatenate([r.first_hit for _, _, r in parts]),
        np.concatenate([r.ap for _, _, r in parts]),
        np.concatenate([r.inp for _, _, r in parts]),
        np.concatenate([r.valid_query_index + start for start, _, r in parts]),
        num_queries, max_rank)


# --------------------------------------------------------------------------------------------------- validation
def _as_labels(x: object, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise EvaluationError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise EvaluationError(f"{name} must hold integers, got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise EvaluationError(f"{name} has {arr.shape[0]} entries but the distance matrix has {n}")
    return arr.astype(np.int64, copy=False)


def _check_distmat(distmat: object) -> np.ndarray:
    d = np.asarray(distmat)
    if d.ndim != 2:
        raise EvaluationError(f"distance matrix must be 2-D (queries x gallery), got shape {d.shape}")
    if d.shape[0] == 0:
        raise EvaluationError("empty query set: the distance matrix has 0 rows")
    if d.shape[1] == 0:
        raise EvaluationError("empty gallery: the distance matrix has 0 columns")
    if d.dtype.kind not in "fiu":
        raise EvaluationError(f"distance matrix must be real numbers, got dtype {d.dtype}")
    if d.dtype.kind == "f":
        # cheap screen: a row sum is finite unless the row holds NaN/inf (or overflows; then check exactly)
        for start in range(0, d.shape[0], 1024):
            block = d[start:start + 1024]
            with np.errstate(over="ignore", invalid="ignore"):
                sums = np.add.reduce(block, axis=1)
            for r in np.flatnonzero(~np.isfinite(sums)):
                bad = np.flatnonzero(~np.isfinite(block[r]))
                if bad.size:
                    raise EvaluationError(f"distance matrix holds NaN/inf (query {start + r}, gallery {bad[0]})")
    return d


# --------------------------------------------------------------------------------------------------- ranking
class _SamePidIndex:
    """pid -> gallery indices (CSR over the gallery sorted stably by pid), built once per gallery."""

    def __init__(self, g_pids: np.ndarray) -> None:
        self.order = np.argsort(g_pids, kind="stable")
        sorted_pids = g_pids[self.order]
        self.pids, self.starts, self.counts = np.unique(sorted_pids, return_index=True, return_counts=True)

    def items(self, q_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each query, its same-pid gallery items: (query position, gallery index), grouped by query."""
        pos = np.searchsorted(self.pids, q_pids)
        pos = np.minimum(pos, max(len(self.pids) - 1, 0))
        found = self.pids[pos] == q_pids
        lengths = np.where(found, self.counts[pos], 0)
        total = int(lengths.sum())
        item_q = np.repeat(np.arange(q_pids.shape[0]), lengths)
        offsets = np.cumsum(lengths) - lengths
        within = np.arange(total) - np.repeat(offsets, lengths)
        item_g = self.order[np.repeat(self.starts[pos], lengths) + within]
        return item_q, item_g


def _stable_ranks(row: np.ndarray, t_max: np.generic, targets: np.ndarray) -> np.ndarray:
    """0-based positions of gallery indices ``targets`` (all with distance <= t_max) in the stable sort of ``row``.

    Only candidates ``row <= t_max`` can precede a target. Without ties a target's position is the number of
    candidates with a smaller distance (``#{d <= t} - 1``); when some candidate ties a target (rare for float
    distances), or a query has so many same-pid items that counting would cost more than sorting, the exact
    stable order of the candidates alone decides.
    """
    mask = row <= t_max
    n_cand = int(np.count_nonzero(mask))
    # items beyond t_max never count below a target, so a mostly-kept row is used whole (no gather)
    cd = row[mask] if 4 * n_cand < row.shape[0] else row
    t = row[targets]
    if t.size * n_cand <= _MAX_PAIRWISE and np.count_nonzero(cd[None, :] == t[:, None]) == t.size:
        le = cd[None, :] <= t[:, None]  # no ties: each target equals only itself, position = #{d <= t} - 1
        if cd.size > 2048:  # per-row count_nonzero is the fastest reduction on long rows
            return np.array([np.count_nonzero(r) for r in le], dtype=np.int64) - 1
        return np.add.reduce(le.view(np.uint8), axis=1, dtype=np.int64) - 1
    cand = np.flatnonzero(mask)
    cd = row[cand]
    order = np.argsort(cd, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(order.shape[0])
    return position[np.searchsorted(cand, targets)]


def evaluate_distmat(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
                     g_camids: np.ndarray, *, junk: str = "market", max_rank: int = 50,
                     allow_no_valid: bool = False) -> RankingResult:
    """CMC / mAP / mINP of a (queries x gallery) distance matrix, equal to fast-reid/torchreid ``eval_market1501``.

    Works on any subset of queries (a chunk), so streaming evaluation is a loop plus :func:`merge_results`.
    ``cmc`` always has ``max_rank`` entries (torchreid shortens it when the gallery is smaller; values agree).
    ``allow_no_valid`` returns a result with NaN means instead of raising when no query has a true match.
    Raises :class:`EvaluationError` on NaN/inf distances, shape mismatches, empty sets or a bad ``junk``.
    """
    if junk not in JUNK_MODES:
        raise EvaluationError(f"junk must be one of {', '.join(JUNK_MODES)}, got {junk!r}")
    if not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise EvaluationError(f"max_rank must be a positive integer, got {max_rank!r}")
    d = _check_distmat(distmat)
    nq, ng = d.shape
    q_pids = _as_labels(q_pids, "q_pids", nq)
    q_camids = _as_labels(q_camids, "q_camids", nq)
    g_pids = _as_labels(g_pids, "g_pids", ng)
    g_camids = _as_labels(g_camids, "g_camids", ng)

    item_q, item_g = _SamePidIndex(g_pids).items(q_pids)
    is_junk = g_camids[item_g] == q_camids[item_q] if junk == "market" else np.zeros(item_q.shape, dtype=bool)
    item_d = d[item_q, item_g]
    true_q = item_q[~is_junk]
    valid = np.zeros(nq, dtype=bool)
    valid[true_q] = True
    lowest = -np.inf if d.dtype.kind == "f" else np.iinfo(d.dtype).min
    t_max = np.full(nq, lowest, dtype=d.dtype)  # largest true-match distance per query, in the native dtype
    np.maximum.at(t_max, true_q, item_d[~is_junk])
    # only items that can precede (or be) a true match need a rank; junk beyond t_max cannot
    need = valid[item_q] & (item_d <= t_max[item_q])
    item_q, item_g, is_junk = item_q[need], item_g[need], is_junk[need]

    raw = np.empty(item_q.shape[0], dtype=np.int64)
    bounds = np.searchsorted(item_q, np.arange(nq + 1))
    for q in np.flatnonzero(valid):
        s, e = bounds[q], bounds[q + 1]
        raw[s:e] = _stable_ranks(d[q], t_max[q], item_g[s:e])

    # sort the ranked items per query by raw rank; a true match's rank drops by the junk ranked before it
    order = np.lexsort((raw, item_q))
    item_q, raw, is_junk = item_q[order], raw[order], is_junk[order]
    group_start = np.searchsorted(item_q, item_q, side="left")
    junk_cum = np.cumsum(is_junk)
    junk_before = junk_cum - is_junk - (junk_cum[group_start] - is_junk[group_start])
    keep = ~is_junk
    tq, rank = item_q[keep], raw[keep] - junk_before[keep]  # true matches grouped by query, in rank order
    starts = np.flatnonzero(np.r_[True, tq[1:] != tq[:-1]])[: tq.size]
    n_true = np.diff(np.r_[starts, tq.size])
    m = np.arange(tq.size) - np.repeat(starts, n_true) + 1  # 1-based index of each true match in rank order
    if tq.size:
        # AP: mean over true matches of precision m / (rank_m + 1)
        ap = np.add.reduceat(m / (rank + 1.0), starts) / n_true
        # INP: num_true / (rank_of_last_true + 1)
        inp = n_true / (rank[starts + n_true - 1] + 1.0)
    else:
        ap = inp = np.zeros(0)
    result = RankingResult.from_per_query(rank[starts], ap, inp, tq[starts], nq, int(max_rank))
    if result.num_valid_queries == 0 and not allow_no_valid:
        raise EvaluationError(f"no valid query: none of the {nq} queries has a true match in the gallery "
                              f"(after junk={junk!r} removal); check pids/camids and the junk rule")
    return result
