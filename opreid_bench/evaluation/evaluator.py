"""The high-level entry: features in, report out (overall metrics, occluded breakdown, bootstrap CIs).

Distances are computed and ranked one query chunk at a time (distance chunk -> metrics chunk), so memory stays
bounded by ``query_chunk x gallery`` floats; the chunk results are merged exactly, so the report equals
``evaluate_distmat`` on the full matrix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from opreid_bench.errors import EvaluationError
from opreid_bench.evaluation.bootstrap import bootstrap_ci
from opreid_bench.evaluation.breakdown import gallery_subsets, query_breakdown
from opreid_bench.evaluation.distances import METRICS, iter_distance_chunks
from opreid_bench.evaluation.features import FeatureSet
from opreid_bench.evaluation.metrics import JUNK_MODES, RankingResult, evaluate_distmat, merge_results

MAX_CHUNK_ELEMENTS = 1 << 26  # at most 64M distances (256 MB float32) per chunk, whatever the gallery size


@dataclass
class EvaluationReport:
    """Overall result, breakdown by occluded/holistic subsets (when flags exist) and bootstrap CIs (or None)."""

    overall: RankingResult
    breakdown: dict[str, RankingResult] = field(default_factory=dict)
    ci: dict | None = None
    metric: str = "euclidean"
    junk: str = "market"
    num_query: int = 0
    num_gallery: int = 0

    def to_dict(self) -> dict:
        """The overall metrics (fractions) and counts; ``breakdown`` and ``ci`` only when present."""
        out = self.overall.to_dict()
        if self.breakdown:
            out["breakdown"] = {name: r.to_dict() for name, r in self.breakdown.items()}
        if self.ci is not None:
            out["ci"] = self.ci
        return out


REPORT_WRITER = "opreid-bench evaluate"  # ``written_by`` of a report file (``evaluate --out`` replaces only those)


def check_inputs(query: FeatureSet, gallery: FeatureSet, metric: str, junk: str) -> None:
    """Raise EvaluationError for an unknown metric or junk rule, or an inconsistent feature set (the first fault)."""
    if metric not in METRICS:
        raise EvaluationError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if junk not in JUNK_MODES:
        raise EvaluationError(f"junk must be one of {', '.join(JUNK_MODES)}, got {junk!r}")
    for side, fs in (("query", query), ("gallery", gallery)):
        bad = fs.problems()
        if bad:
            raise EvaluationError(f"{side} {bad[0]}")


def evaluate_features(query: FeatureSet, gallery: FeatureSet, *, metric: str = "euclidean", junk: str = "market",
                      max_rank: int = 50, device: str | None = None, query_chunk: int = 1024, bootstrap: int = 0,
                      seed: int = 0, progress: bool = False) -> EvaluationReport:
    """Evaluate query against gallery features, streaming over query chunks (never the full q x g matrix).

    ``bootstrap > 0`` adds 95% percentile CIs over resampled queries (seeded by ``seed``). ``progress`` shows a
    rich progress bar on stderr. Raises :class:`EvaluationError` for inconsistent inputs or no valid query.
    """
    if query_chunk < 1:
        raise EvaluationError(f"query_chunk must be positive, got {query_chunk}")
    check_inputs(query, gallery, metric, junk)
    nq, ng = len(query), len(gallery)
    rows = max(1, min(query_chunk, MAX_CHUNK_ELEMENTS // ng))

    from opreid_bench.progress_bars import transient_progress

    with transient_progress(enabled=progress) as bar:
        task = bar.add_task(f"evaluating {nq} x {ng} ({metric})", total=nq)

        def chunks():
            for start, stop, dist in iter_distance_chunks(query.features, gallery.features, metric, device=device,
                                                          chunk_size=rows):
                yield start, stop, dist
                bar.advance(task, stop - start)

        return evaluate_distance_chunks(chunks(), query, gallery, metric=metric, junk=junk, max_rank=max_rank,
                                        bootstrap=bootstrap, seed=seed)


def evaluate_distance_chunks(chunks: Iterable[tuple[int, int, np.ndarray]], query: FeatureSet, gallery: FeatureSet,
                             *, metric: str, junk: str = "market", max_rank: int = 50, bootstrap: int = 0,
                             seed: int = 0) -> EvaluationReport:
    """The report from query-row chunks ``(start, stop, distances)`` of a q x g distance matrix, merged exactly.

    Shared by feature evaluation (chunks computed on the fly) and re-ranking (chunks of the re-ranked matrix), so
    both give the same overall, breakdown and bootstrap numbers for the same distances.
    """
    nq, ng = len(query), len(gallery)
    g_pids, g_camids = np.asarray(gallery.pids), np.asarray(gallery.camids)
    q_pids, q_camids = np.asarray(query.pids), np.asarray(query.camids)
    g_subsets = gallery_subsets(gallery.occluded)
    parts: dict[str, list[tuple[int, int, RankingResult]]] = {"overall": [], **{k: [] for k in g_subsets}}
    for start, stop, dist in chunks:
        qp, qc = q_pids[start:stop], q_camids[start:stop]
        parts["overall"].append((start, stop, evaluate_distmat(
            dist, qp, g_pids, qc, g_camids, junk=junk, max_rank=max_rank, allow_no_valid=True)))
        for name, cols in g_subsets.items():
            parts[name].append((start, stop, evaluate_distmat(
                dist[:, cols], qp, g_pids[cols], qc, g_camids[cols], junk=junk, max_rank=max_rank,
                allow_no_valid=True)))
    overall = merge_results(parts["overall"], max_rank)
    if overall.num_valid_queries == 0:
        raise EvaluationError(f"no valid query: none of the {nq} queries has a true match in the gallery "
                              f"(after junk={junk!r} removal); check pids/camids and the junk rule")
    breakdown = query_breakdown(overall, query.occluded)
    breakdown.update({name: merge_results(parts[name], max_rank) for name in g_subsets})
    ci = bootstrap_ci(overall, bootstrap, seed) if bootstrap > 0 else None
    return EvaluationReport(overall=overall, breakdown=breakdown, ci=ci, metric=metric, junk=junk, num_query=nq,
                            num_gallery=ng)
