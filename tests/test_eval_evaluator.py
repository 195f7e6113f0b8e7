"""Distances, streaming evaluate_features (== evaluate_distmat on the full matrix), breakdowns and bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from opreid_bench.errors import EvaluationError
from opreid_bench.evaluation import (
    FeatureSet,
    bootstrap_ci,
    compute_distances,
    evaluate_distmat,
    evaluate_features,
    iter_distance_chunks,
)


def make_sets(seed: int = 0, nq: int = 60, ng: int = 400, dim: int = 16, occluded: bool = True):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((30, dim))

    def side(n):
        pids = rng.integers(0, 30, n)
        feats = (centers[pids] + 0.8 * rng.standard_normal((n, dim))).astype(np.float32)
        return FeatureSet(feats, pids, rng.integers(0, 4, n), occluded=rng.random(n) < 0.3 if occluded else None)

    return side(nq), side(ng)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_distances_match_numpy(metric):
    rng = np.random.default_rng(1)
    qf, gf = rng.standard_normal((13, 8)), rng.standard_normal((21, 8))
    if metric == "euclidean":
        expected = np.sqrt(((qf[:, None, :] - gf[None, :, :]) ** 2).sum(-1))
    else:
        qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
        expected = 1.0 - qn @ gn.T
    d = compute_distances(qf, gf, metric, device="cpu", chunk_size=5)
    assert d.dtype == np.float32 and d.shape == (13, 21)
    np.testing.assert_allclose(d, expected, atol=1e-5)
    chunks = list(iter_distance_chunks(qf, gf, metric, device="cpu", chunk_size=5))
    assert [(s, e) for s, e, _ in chunks] == [(0, 5), (5, 10), (10, 13)]
    np.testing.assert_array_equal(np.concatenate([c for _, _, c in chunks]), d)


def test_unknown_or_missing_device_is_a_user_error():
    import torch

    with pytest.raises(EvaluationError, match="unknown torch device"):
        compute_distances(np.zeros((1, 2)), np.zeros((1, 2)), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(EvaluationError, match="CUDA is not available"):
            compute_distances(np.zeros((1, 2)), np.zeros((1, 2)), device="cuda")


def test_euclidean_self_distance_is_clamped_not_nan():
    x = np.full((2, 4), 1e3, dtype=np.float32)
    d = compute_distances(x, x, "euclidean", device="cpu")
    assert np.isfinite(d).all() and (d >= 0).all()


@pytest.mark.parametrize(("qf", "gf", "message"), [
    (np.zeros((2, 3)), np.zeros((2, 4)), "dimensions differ"),
    (np.zeros((0, 3)), np.zeros((2, 3)), "query features are empty"),
    (np.array([[0.0, np.nan]]), np.zeros((2, 2)), "NaN/inf"),
    (np.zeros(3), np.zeros((2, 3)), "2-D"),
])
def test_distance_errors(qf, gf, message):
    with pytest.raises(EvaluationError, match=message):
        compute_distances(qf, gf)
    with pytest.raises(EvaluationError, match="metric must be"):
        compute_distances(np.zeros((1, 2)), np.zeros((1, 2)), "manhattan")


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("junk", ["market", "none"])
def test_streaming_equals_full_distmat(metric, junk):
    q, g = make_sets()
    report = evaluate_features(q, g, metric=metric, junk=junk, query_chunk=7, device="cpu")
    d = compute_distances(q.features, g.features, metric, device="cpu")
    full = evaluate_distmat(d, q.pids, g.pids, q.camids, g.camids, junk=junk)
    assert report.overall.to_dict() == full.to_dict()
    np.testing.assert_array_equal(report.overall.ap, full.ap)
    np.testing.assert_array_equal(report.overall.first_hit, full.first_hit)
    np.testing.assert_array_equal(report.overall.cmc, full.cmc)


def test_breakdown_subsets():
    q, g = make_sets(seed=3)
    report = evaluate_features(q, g, query_chunk=16, device="cpu")
    d = compute_distances(q.features, g.features, device="cpu")
    assert list(report.breakdown) == ["occluded_query", "holistic_query", "holistic_gallery", "occluded_gallery"]
    for name, rows in (("occluded_query", q.occluded), ("holistic_query", ~q.occluded)):
        expected = evaluate_distmat(d[rows], q.pids[rows], g.pids, q.camids[rows], g.camids, allow_no_valid=True)
        assert report.breakdown[name].to_dict() == expected.to_dict()
    for name, cols in (("holistic_gallery", ~g.occluded), ("occluded_gallery", g.occluded)):
        expected = evaluate_distmat(d[:, cols], q.pids, g.pids[cols], q.camids, g.camids[cols], allow_no_valid=True)
        assert report.breakdown[name].to_dict() == expected.to_dict()
    out = report.to_dict()
    assert set(out["breakdown"]) == set(report.breakdown) and "ci" not in out


def test_no_breakdown_without_flags_or_for_one_sided_sets():
    q, g = make_sets(occluded=False)
    assert evaluate_features(q, g, device="cpu").breakdown == {}
    q.occluded = np.ones(len(q), dtype=bool)  # all queries occluded: the subset equals the overall row
    assert "breakdown" not in evaluate_features(q, g, device="cpu").to_dict()


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    q, g = make_sets(nq=120)
    a = evaluate_features(q, g, bootstrap=300, seed=5, device="cpu")
    b = evaluate_features(q, g, bootstrap=300, seed=5, device="cpu")
    c = evaluate_features(q, g, bootstrap=300, seed=6, device="cpu")
    assert a.ci == b.ci and a.ci != c.ci
    assert a.ci["resamples"] == 300 and a.ci["level"] == 0.95 and a.ci["seed"] == 5
    for key, point in (("rank1", a.overall.rank(1)), ("mAP", a.overall.mAP), ("mINP", a.overall.mINP)):
        lo, hi = a.ci[key]
        assert 0.0 <= lo < hi <= 1.0 and lo <= point <= hi
    assert a.to_dict()["ci"] == a.ci
    with pytest.raises(EvaluationError, match="at least one resample"):
        bootstrap_ci(a.overall, 0)


def test_evaluate_features_errors():
    q, g = make_sets(occluded=False)
    q.pids = q.pids[:-1]
    with pytest.raises(EvaluationError, match="query pids: expected 60 entries"):
        evaluate_features(q, g, device="cpu")
    q, g = make_sets(occluded=False)
    g.pids = g.pids + 1000  # no shared identity
    with pytest.raises(EvaluationError, match="no valid query"):
        evaluate_features(q, g, device="cpu")
    with pytest.raises(EvaluationError, match="junk must be"):
        evaluate_features(q, g, junk="all")


def test_a_component_every_feature_shares_does_not_change_the_ranking() -> None:
    """Euclidean distances do not change when every feature moves by the same vector; in float32 the expansion
    |q|^2 + |g|^2 - 2 q.g cancels catastrophically unless that common part is taken out first."""
    rng = np.random.default_rng(3)
    centres = rng.random((30, 48))
    q_pids, g_pids = np.arange(60) % 30, np.arange(300) % 30
    qf = centres[q_pids] + 0.3 * rng.random((60, 48))
    gf = centres[g_pids] + 0.3 * rng.random((300, 48))
    q_cams, g_cams = np.zeros(60, int), np.ones(300, int)
    base = evaluate_features(FeatureSet(qf.astype(np.float32), q_pids, q_cams),
                             FeatureSet(gf.astype(np.float32), g_pids, g_cams))
    for offset in (10.0, 100.0, 1000.0):
        moved = evaluate_features(FeatureSet((qf + offset).astype(np.float32), q_pids, q_cams),
                                  FeatureSet((gf + offset).astype(np.float32), g_pids, g_cams))
        assert moved.overall.rank(1) == pytest.approx(base.overall.rank(1), abs=0.02)
        assert moved.overall.mAP == pytest.approx(base.overall.mAP, abs=0.005), offset
