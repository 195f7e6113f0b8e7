"""Occluded / holistic breakdowns: which subsets of queries and of the gallery a report is split into.

- ``occluded_query`` / ``holistic_query``: only those queries, against the full gallery (a subset of the overall
  per-query results; nothing is recomputed);
- ``holistic_gallery`` / ``occluded_gallery``: all queries against the gallery restricted to those items
  (re-ranked, since removing gallery items changes every rank).
"""

from __future__ import annotations

import numpy as np

from opreid_bench.evaluation.metrics import RankingResult

QUERY_SUBSETS = ("occluded_query", "holistic_query")
GALLERY_SUBSETS = ("holistic_gallery", "occluded_gallery")


def query_subsets(occluded: np.ndarray | None) -> dict[str, np.ndarray]:
    """Query masks by name, for subsets that are neither empty nor all queries (none without occluded flags)."""
    if occluded is None:
        return {}
    occ = np.asarray(occluded, dtype=bool)
    masks = {"occluded_query": occ, "holistic_query": ~occ}
    return {k: m for k, m in masks.items() if 0 < int(m.sum()) < occ.shape[0]}


def gallery_subsets(occluded: np.ndarray | None) -> dict[str, np.ndarray]:
    """Gallery column indices by name, for subsets that are neither empty nor the whole gallery."""
    if occluded is None:
        return {}
    occ = np.asarray(occluded, dtype=bool)
    cols = {"holistic_gallery": np.flatnonzero(~occ), "occluded_gallery": np.flatnonzero(occ)}
    return {k: c for k, c in cols.items() if 0 < c.size < occ.shape[0]}


def query_breakdown(overall: RankingResult, occluded: np.ndarray | None) -> dict[str, RankingResult]:
    """The overall result restricted to occluded / holistic queries."""
    return {name: overall.subset(mask) for name, mask in query_subsets(occluded).items()}
