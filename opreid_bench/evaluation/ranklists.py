"""Rank lists for people to look at: per query its AP, the rank of its first true match and its top-k gallery items.

Why: a ReID model is judged by looking at what it ranks first for a query. The numbers shown next to each list must
be the evaluator's, so this module computes them with the evaluator's own functions (:func:`iter_distance_chunks`,
:func:`evaluate_distmat`, :func:`merge_results`) one query chunk at a time: memory stays bounded by
``chunk x gallery`` distances, never the full q x g matrix.

The shown list follows the evaluator's ranking: gallery items in stable ascending distance, junk (``junk="market"``:
same pid and same camera as the query) kept in place but marked and not counted, so the ``rank`` of the n-th
non-junk item is ``n`` and the first green item sits at the evaluator's ``first_hit + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from opreid_bench.errors import EvaluationError
from opreid_bench.evaluation.distances import iter_distance_chunks
from opreid_bench.evaluation.evaluator import MAX_CHUNK_ELEMENTS, check_inputs  # the evaluator's chunks and rounding
from opreid_bench.evaluation.features import FeatureSet
from opreid_bench.evaluation.metrics import evaluate_distmat, merge_results

SORTS = ("ap", "rank1", "random")


@dataclass
class RankLists:
    """Per-query evaluator values and top lists of one model.

    ``ap`` is NaN and ``first_hit`` is -1 for a query without a true match (the evaluator skips it).
    ``indices[q]`` lists gallery indices in ranked order, long enough to hold ``topk`` non-junk items; ``junk[q]``
    flags the junk among them and ``true[q]`` the true matches (same pid, not junk).
    """

    ap: np.ndarray  # (nq,) float64
    first_hit: np.ndarray  # (nq,) int64, 0-based rank after junk removal, -1 when invalid
    indices: np.ndarray  # (nq, k + max_junk) int64
    distances: np.ndarray  # (nq, k + max_junk) float32
    junk: np.ndarray  # (nq, k + max_junk) bool
    true: np.ndarray  # (nq, k + max_junk) bool
    topk: int

    @property
    def valid(self) -> np.ndarray:
        """Queries the evaluator counts (at least one true match after junk removal)."""
        return self.first_hit >= 0

    def shown(self, q: int) -> list[tuple[int, float, str]]:
        """The shown list of query ``q``: ``(gallery index, distance, "true"|"wrong"|"junk")`` up to ``topk`` non-junk.

        Junk items ranked before the ``topk``-th non-junk item are kept (marked), so the list reads like the ranking.
        """
        out: list[tuple[int, float, str]] = []
        counted = 0
        for gi, d, j, t in zip(self.indices[q], self.distances[q], self.junk[q], self.true[q], strict=True):
            if counted == self.topk:
                break
            out.append((int(gi), float(d), "junk" if j else ("true" if t else "wrong")))
            counted += int(not j)
        return out

    def true_in_topk(self, q: int) -> int:
        """Number of true matches (junk excluded) among the first ``topk`` non-junk items of query ``q``."""
        return sum(1 for _, _, kind in self.shown(q) if kind == "true")


def _max_junk(query: FeatureSet, gallery: FeatureSet, junk: str) -> int:
    """The largest number of junk gallery items of any query (0 without the market rule)."""
    if junk != "market":
        return 0
    keys_g = np.asarray(gallery.pids, dtype=np.int64) * (1 << 20) + np.asarray(gallery.camids, dtype=np.int64)
    uniq, counts = np.unique(keys_g, return_counts=True)
    keys_q = np.asarray(query.pids, dtype=np.int64) * (1 << 20) + np.asarray(query.camids, dtype=np.int64)
    pos = np.minimum(np.searchsorted(uniq, keys_q), len(uniq) - 1)
    found = uniq[pos] == keys_q
    return int(np.max(np.where(found, counts[pos], 0), initial=0))


def compute_rank_lists(query: FeatureSet, gallery: FeatureSet, *, metric: str = "euclidean", junk: str = "market",
                       topk: int = 10, device: str | None = "cpu", chunk_rows: int | None = None) -> RankLists:
    """AP and first-hit rank of every query (equal to the evaluator's) and its ranked top list, chunk by chunk.

    Raises :class:`EvaluationError` for a bad metric/junk/topk or inconsistent inputs.
    """
    import torch

    from opreid_bench.evaluation.retrieval import stable_topk

    check_inputs(query, gallery, metric, junk)  # the evaluator's own checks
    if topk < 1:
        raise EvaluationError(f"topk must be at least 1, got {topk}")
    nq, ng = len(query), len(gallery)
    width = min(ng, topk + _max_junk(query, gallery, junk))
    rows = chunk_rows or max(1, min(1024, MAX_CHUNK_ELEMENTS // ng))
    q_pids, q_camids = np.asarray(query.pids, dtype=np.int64), np.asarray(query.camids, dtype=np.int64)
    g_pids, g_camids = np.asarray(gallery.pids, dtype=np.int64), np.asarray(gallery.camids, dtype=np.int64)
    parts = []
    indices = np.empty((nq, width), dtype=np.int64)
    distances = np.empty((nq, width), dtype=np.float32)
    for start, stop, dist in iter_distance_chunks(query.features, gallery.features, metric, device=device,
                                                  chunk_size=rows):
        parts.append((start, stop, evaluate_distmat(dist, q_pids[start:stop], g_pids, q_camids[start:stop], g_camids,
                                                    junk=junk, max_rank=1, allow_no_valid=True)))
        vals, idx = stable_topk(torch.from_numpy(dist), width)  # the evaluator's order: stable ascending distance
        indices[start:stop] = idx.numpy()
        distances[start:stop] = vals.numpy()
    merged = merge_results(parts, 1)
    ap = np.full(nq, np.nan)
    first_hit = np.full(nq, -1, dtype=np.int64)
    ap[merged.valid_query_index] = merged.ap
    first_hit[merged.valid_query_index] = merged.first_hit
    same = g_pids[indices] == q_pids[:, None]
    is_junk = same & (g_camids[indices] == q_camids[:, None]) if junk == "market" else np.zeros_like(same)
    return RankLists(ap=ap, first_hit=first_hit, indices=indices, distances=distances, junk=is_junk,
                     true=same & ~is_junk, topk=topk)


def order_queries(lists: RankLists, *, sort: str = "ap", seed: int = 0, only_failures: bool = False,
                  candidates: np.ndarray | None = None) -> np.ndarray:
    """Valid query indices in display order.

    ``ap``: lowest AP first; ``rank1``: latest first true match first; ``random``: a permutation seeded by ``seed``.
    Ties keep query order. ``only_failures`` keeps queries whose rank-1 item is not a true match.
    ``candidates`` restricts the choice to those query indices.
    """
    if sort not in SORTS:
        raise EvaluationError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    keep = lists.valid.copy()
    if only_failures:
        keep &= lists.first_hit > 0
    if candidates is not None:
        mask = np.zeros_like(keep)
        mask[np.asarray(candidates, dtype=np.int64)] = True
        keep &= mask
    idx = np.flatnonzero(keep)
    if sort == "ap":
        return idx[np.argsort(lists.ap[idx], kind="stable")]
    if sort == "rank1":
        return idx[np.argsort(-lists.first_hit[idx], kind="stable")]
    return np.random.default_rng(seed).permutation(idx)


def compare_wins(a: RankLists, b: RankLists) -> tuple[np.ndarray, np.ndarray]:
    """Query indices where A's rank-1 is right and B's wrong, and the reverse (valid queries only).

    Both lists must rank the same queries against the same gallery (checked by the caller via the labels).
    """
    valid = a.valid & b.valid
    a_right, b_right = a.first_hit == 0, b.first_hit == 0
    return np.flatnonzero(valid & a_right & ~b_right), np.flatnonzero(valid & b_right & ~a_right)


def same_labels(a_query: FeatureSet, a_gallery: FeatureSet, b_query: FeatureSet, b_gallery: FeatureSet) -> str | None:
    """None when two evaluations hold the same queries and gallery (pids, camids, paths), else what differs."""
    for side, x, y in (("query", a_query, b_query), ("gallery", a_gallery, b_gallery)):
        if len(x) != len(y):
            return f"/{side} has {len(y)} items, not {len(x)}"
        for name in ("pids", "camids"):
            if not np.array_equal(np.asarray(getattr(x, name)), np.asarray(getattr(y, name))):
                return f"/{side}/{name} differ"
        if x.paths is not None and y.paths is not None and list(x.paths) != list(y.paths):
            xs, ys = names_under_common_folder(x.paths), names_under_common_folder(y.paths)
            if xs != ys:
                i = next(i for i, (p, q) in enumerate(zip(xs, ys)) if p != q)
                return f"/{side}/paths differ (item {i}: {y.paths[i]!r}, not {x.paths[i]!r})"
    return None


def names_under_common_folder(paths: Sequence[str]) -> list[str]:
    """Each path relative to the deepest folder that holds them all: the same crops read from ``data/`` and from
    ``/home/me/data/`` (one feature file extracted with a relative root, the other with an absolute one) give the
    same names, while a different crop or a different order does not."""
    import os

    posix = [str(p).replace("\\", "/") for p in paths]
    if not posix:
        return []
    folders = [os.path.dirname(p) for p in posix]
    try:
        common = os.path.commonpath(folders) if all(folders) else ""
    except ValueError:  # absolute and relative paths mixed in one list
        common = ""
    return [os.path.relpath(p, common) if common else p for p in posix]
