"""Intervals of proportions (Wilson; MOVER for balanced accuracy) against values worked out by hand."""

from __future__ import annotations

import pytest

from opreid_bench.evaluation.proportions import balanced_accuracy_interval, wilson_interval


def test_wilson_matches_the_textbook_values() -> None:
    # Newcombe (1998), Table I: 81 of 263 -> 0.2553 to 0.3662; 0 of 10 -> 0 to 0.2775; 1 of 29 -> 0.0061 to 0.1718
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(1, 29) == pytest.approx((0.0061, 0.1718), abs=1e-4)
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(3, 3)
    assert hi == 1.0 and 0.4 < lo < 0.5  # 3 of 3: the interval still admits a recall below one half
    with pytest.raises(ValueError):
        wilson_interval(4, 3)
    with pytest.raises(ValueError):
        wilson_interval(1, 3, level=1.0)


def test_balanced_accuracy_interval_contains_the_point_and_narrows_with_more_crops() -> None:
    point = (20 / 30 + 150 / 170) / 2
    lo, hi = balanced_accuracy_interval(20, 30, 150, 170)
    assert lo < point < hi
    lo10, hi10 = balanced_accuracy_interval(200, 300, 1500, 1700)
    assert lo < lo10 < point < hi10 < hi
    # MOVER from the two Wilson intervals, by hand
    r, s = wilson_interval(20, 30), wilson_interval(150, 170)
    pr, ps = 20 / 30, 150 / 170
    assert lo == pytest.approx((pr + ps - ((pr - r[0]) ** 2 + (ps - s[0]) ** 2) ** 0.5) / 2)
    assert hi == pytest.approx((pr + ps + ((r[1] - pr) ** 2 + (s[1] - ps) ** 2) ** 0.5) / 2)
    # a value worked out by hand: 20/30 -> Wilson [0.4878, 0.8077], 150/170 -> [0.8255, 0.9225];
    # MOVER: (1.5490 - hypot(0.1789, 0.0571)) / 2 = 0.6806, (1.5490 + hypot(0.1410, 0.0402)) / 2 = 0.8478
    assert (lo, hi) == pytest.approx((0.6806, 0.8478), abs=1e-4)
    # three positives, none found: the interval is wide, not a point
    lo3, hi3 = balanced_accuracy_interval(0, 3, 112, 124)
    assert lo3 < 0.45 and hi3 - lo3 > 0.25
    assert balanced_accuracy_interval(0, 0, 5, 10) is None
