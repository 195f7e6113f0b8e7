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
    _check_settings(num_resamples, seed, level)
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


def _check_settings(num_resamples: int, seed: int, level: float) -> None:
    """One line for settings no bootstrap can run with (numpy's generator takes no negative seed)."""
    if num_resamples < 1:
        raise EvaluationError(f"bootstrap needs at least one resample, got {num_resamples}")
    if seed < 0:
        raise EvaluationError(f"bootstrap seed must be 0 or more, got {seed}")
    if not 0.0 < level < 1.0:
        raise EvaluationError(f"confidence level must be in (0, 1), got {level}")


def _resample_means(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean over seeds and resampled queries: values (S, Q), idx (R, Q) -> (R,)."""
    return values[:, idx].mean(axis=(0, 2))


def seed_mean_ci(values: np.ndarray, num_resamples: int = 2000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile CI of the mean of a per-query metric over seeds, resampling the queries (seeded).

    ``values`` is (S, Q): the per-query AP (or rank-1 hit) of S training seeds on the same Q valid queries. The seeds
    are kept and the queries resampled, so the interval says how much the seed-averaged figure would move with
    another query set of the same size; seed-to-seed spread is reported separately (std over seeds).
    """
    _check_settings(num_resamples, seed, level)
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if values.shape[1] == 0:
        raise EvaluationError("bootstrap needs at least one valid query")
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, num_resamples, _BATCH):
        idx = rng.integers(0, values.shape[1], size=(min(_BATCH, num_resamples - start), values.shape[1]))
        draws.append(_resample_means(values, idx))
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(np.concatenate(draws), [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def paired_difference_ci(a: np.ndarray, b: np.ndarray, num_resamples: int = 2000, seed: int = 0,
                         level: float = 0.95) -> dict:
    """Paired bootstrap of mean(a) - mean(b) over the same queries: a (S_a, Q), b (S_b, Q) per-query values.

    Both models are scored on one resampled query set per draw, so query difficulty cancels out (a paired test).
    Returns ``{"diff", "ci95": [lo, hi], "p_not_positive"}``: the observed difference of the seed-averaged means,
    its percentile interval, and the share of resamples in which the difference was <= 0.
    """
    _check_settings(num_resamples, seed, level)
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise EvaluationError(f"paired bootstrap needs the same queries: {a.shape[1]} vs {b.shape[1]}")
    if a.shape[1] == 0:
        raise EvaluationError("bootstrap needs at least one valid query")
    diff_per_query = a.mean(axis=0) - b.mean(axis=0)  # (Q,): seed-averaged per-query difference
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, num_resamples, _BATCH):
        idx = rng.integers(0, a.shape[1], size=(min(_BATCH, num_resamples - start), a.shape[1]))
        draws.append(diff_per_query[idx].mean(axis=1))
    d = np.concatenate(draws)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(d, [tail, 100.0 - tail])
    return {"diff": float(diff_per_query.mean()), "ci95": [float(lo), float(hi)],
            "p_not_positive": float(np.mean(d <= 0.0))}
