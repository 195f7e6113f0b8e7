"""The synthetic occlusions of ``benchmarks/bench_occlusion_appearance.py --signals synthetic``: what each kind does to
a real crop, determinism by seed, and that no training crop of a left-out set reaches its classifier."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from opreid_bench.data.decode import load_rgb

pytestmark = pytest.mark.shared_data


def _bench():
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        import bench_occlusion_appearance
    finally:
        sys.path.remove(str(folder))
    return bench_occlusion_appearance


def _crops(partial_reid_root: Path) -> tuple[list, np.ndarray]:
    # three whole-body people of Partial-REID (holistic) and one occluded crop (never a background or a donor)
    names = ["whole_body_images/001_001.jpg", "whole_body_images/002_001.jpg", "whole_body_images/003_001.jpg",
             "occluded_body_images/001_001.jpg"]
    crops = [SimpleNamespace(path=str(partial_reid_root / n)) for n in names]
    return crops, np.array([0, 0, 0, 1])


def test_every_holistic_crop_is_occluded_three_ways_and_the_same_seed_gives_the_same_images(partial_reid_root):
    bench = _bench()
    crops, y = _crops(partial_reid_root)
    first = list(bench.synthetic_occlusions(crops, y, seed=3))
    again = list(bench.synthetic_occlusions(crops, y, seed=3))
    other = list(bench.synthetic_occlusions(crops, y, seed=4))
    assert [(b, d, k) for _, b, d, k in first] == [(b, d, k) for _, b, d, k in again]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))
    assert {b for _, b, _, _ in first} == {0, 1, 2}  # the occluded crop is never a background
    assert {d for _, _, d, _ in first} <= {-1, 0, 1, 2}  # nor a donor
    by_kind = {k: [(img, b, d) for img, b, d, kk in first if kk == k] for k in bench.SYNTH_KINDS}
    assert all(len(v) == 3 for v in by_kind.values())
    for img, b, _ in by_kind["cut"]:
        base = np.asarray(load_rgb(crops[b].path))
        h = img.shape[0]
        assert 0.5 * base.shape[0] - 1 <= h <= 0.75 * base.shape[0] + 1
        assert np.array_equal(img, base[:h])  # the top of the crop, untouched
    for kind in ("person", "patch"):
        for img, b, d in by_kind[kind]:
            base = np.asarray(load_rgb(crops[b].path))
            assert img.shape == base.shape and d >= 0
            changed = np.abs(img.astype(int) - base.astype(int)).sum(axis=2) > 0
            rows = np.flatnonzero(changed.any(axis=1))
            assert len(rows) and rows.min() >= 0.3 * base.shape[0]  # only the lower body is covered


def test_the_classifier_of_a_left_out_set_trains_on_none_of_its_crops_or_donors():
    bench = _bench()
    ds = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 4)
    y = np.array([0, 0, 0, 1] * 3)
    s_base = np.array([0, 1, 4, 5, 8, 9, 4, 8])
    s_donor = np.array([4, -1, 0, 9, -1, 5, 8, 1])  # rows 2 and 7 take their donor from set "a"
    keep, neg = bench.synthetic_training_rows(y, ds, s_base, s_donor, ["a"])
    assert keep.tolist() == [False, False, False, True, True, True, True, False]
    assert neg.tolist() == [4, 5, 6, 8, 9, 10]  # real holistic crops of "b" and "c" only
    keep, neg = bench.synthetic_training_rows(y, ds, s_base, s_donor, ["a", "c"])
    assert keep.tolist() == [False, False, False, False, False, False, False, False]
    assert neg.tolist() == [4, 5, 6]
