"""Confidence intervals of proportions counted on labelled crops (recall, false-occluded share, balanced accuracy).

Why: the occlusion rule is scored per dataset on a few hundred hand-labelled crops, some with only a handful of
occluded ones (VIPeR: 3 of 127); a point figure alone reads as more certain than it is. Wilson's score interval
stays inside [0, 1] and is sensible at 0 of n; balanced accuracy, the mean of two proportions counted on disjoint
crops, gets the MOVER interval (method of variance estimates recovery; Zou and Donner, 2008) built from the two Wilson
intervals, as Newcombe (1998) builds the interval of a difference.

Both treat every crop as an independent draw. Crops of one person are not (Partial-REID has five of each of 60
people), so on such sets the intervals are narrower than what another sample of people would give.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level!r}: a confidence level lies strictly between 0 and 1")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of the proportion ``successes / n``; None when ``n`` is 0 (nothing was counted)."""
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"{successes} successes of {n}: need 0 <= successes <= n")
    if n == 0:
        return None
    z = _z(level)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exactly 0, not a rounding residue
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def balanced_accuracy_interval(true_pos: int, n_pos: int, true_neg: int, n_neg: int,
                               level: float = 0.95) -> tuple[float, float] | None:
    """Interval of balanced accuracy ``(true_pos / n_pos + true_neg / n_neg) / 2`` (recall and specificity counted on
    disjoint crops): MOVER from each one's Wilson interval; None when either side has no crop."""
    r, s = wilson_interval(true_pos, n_pos, level), wilson_interval(true_neg, n_neg, level)
    if r is None or s is None:
        return None
    pr, ps = true_pos / n_pos, true_neg / n_neg
    lo = pr + ps - math.hypot(pr - r[0], ps - s[0])
    hi = pr + ps + math.hypot(r[1] - pr, s[1] - ps)
    return max(0.0, lo / 2.0), min(1.0, hi / 2.0)


__all__ = ["balanced_accuracy_interval", "wilson_interval"]
