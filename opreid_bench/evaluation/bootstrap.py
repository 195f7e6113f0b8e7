"""Bootstrap confidence intervals over queries: how much rank-1 / mAP / mINP would move with another query set."""

from __future__ import annotations

import numpy as np

from opreid_bench.errors import EvaluationError
from opreid_bench.evaluation.metrics import RankingResult

_BATCH = 256  # resamples drawn per generator call (fixed, so a seed always gives the same draws)


def bootstrap_ci(result: RankingResult, num_resamples: int, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile CIs of rank1, mAP and mINP from resampling the valid queries with replacement (seeded).

    Returns ``{"level", "resamples", "seed", "rank1": [lo, hi], "mAP": [lo, hi], "mINP": [lo, hi]}`` with
    metrics as fractions; the same ``seed`` gives identical numbers.
    """
    if num_resamples < 1:
        raise EvaluationError(f"bootstrap needs at least one resample, got {num_resamples}")
    if not 0.0 < level < 1.0:
        raise EvaluationError(f"confidence level must be in (0, 1), got {level}")
    n = result.num_valid_queries
    if n == 0:
        raise EvaluationError("bootstrap needs at least one valid query")
    rng = np.random.default_rng(seed)
    hit1 = (result.first_hit == 0).astype(np.float64)
    stats = {"rank1": [], "mAP": [], "mINP": []}
    for start in range(0, num_resamples, _BATCH):
        idx = rng.integers(0, n, size=(min(_BATCH, num_resamples - start), n))
        stats["rank1"].append(hit1[idx].mean(axis=1))
        stats["mAP"].append(result.ap[idx].mean(axis=1))
        stats["mINP"].append(result.inp[idx].mean(axis=1))
    tail = 100.0 * (1.0 - level) / 2.0
    out: dict = {"level": level, "resamples": int(num_resamples), "seed": int(seed)}
    for name, parts in stats.items():
        lo, hi = np.percentile(np.concatenate(parts), [tail, 100.0 - tail])
        out[name] = [float(lo), float(hi)]
    return out
