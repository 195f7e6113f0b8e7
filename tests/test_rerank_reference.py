"""k-reciprocal re-ranking equals a plain transcription of the authors' reference (ties, duplicates, both metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from opreid_bench.errors import EvaluationError
from opreid_bench.evaluation.distances import compute_distances
from opreid_bench.evaluation.rerank import re_ranking, rerank_features

TOL = 1e-5



def reference_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """The authors' re_ranking, transcribed line by line; only change: argsort(kind="stable") (defined tie order)."""
    original_dist = np.concatenate(
        [np.concatenate([q_q_dist, q_g_dist], axis=1), np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0
    )
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist, kind="stable").astype(np.int32)
    query_num = q_g_dist.shape[0]
    gallery_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    all_num = gallery_num
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, : k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, : k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward_k_neigh_index = initial_rank[candidate, : int(np.around(k1 / 2.0)) + 1]
            candidate_backward_k_neigh_index = initial_rank[
                candidate_forward_k_neigh_index, : int(np.around(k1 / 2.0)) + 1
            ]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > 2.0 / 3 * len(
                candidate_k_reciprocal_index
            ):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index, candidate_k_reciprocal_index)
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num,]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    invIndex = []
    for i in range(gallery_num):
        invIndex.append(np.where(V[:, i] != 0)[0])
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]]
            )
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


def _clustered(rng: np.random.Generator, nq: int, ng: int, dim: int = 16, ids: int = 12):
    centers = rng.normal(size=(ids, dim))
    qf = centers[rng.integers(0, ids, nq)] + 0.6 * rng.normal(size=(nq, dim))
    gf = centers[rng.integers(0, ids, ng)] + 0.6 * rng.normal(size=(ng, dim))
    return qf.astype(np.float32), gf.astype(np.float32)


def _dists(qf: np.ndarray, gf: np.ndarray, metric: str):
    return compute_distances(qf, gf, metric), compute_distances(qf, qf, metric), compute_distances(gf, gf, metric)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_features_match_reference(metric: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    qf, gf = _clustered(rng, 25, 110)
    q_g, q_q, g_g = _dists(qf, gf, metric)
    ref = reference_re_ranking(q_g, q_q, g_g)
    assert ref.shape == (25, 110)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g), ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(rerank_features(qf, gf, metric=metric), ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("seed", range(6))
def test_ties_and_duplicates_match_reference(seed: int) -> None:
    """Integer features (euclidean) and +-1 features (cosine) make every distance exact, so ties are real ties."""
    rng = np.random.default_rng(100 + seed)
    nq, ng = int(rng.integers(6, 25)), int(rng.integers(25, 70))
    k1, k2, lam = int(rng.integers(2, 12)), int(rng.integers(1, 6)), float(rng.uniform())
    base_int = rng.integers(-2, 3, size=(10, 6))
    base_pm1 = rng.choice([-1.0, 1.0], size=(8, 4))
    cases = [
        (base_int[rng.integers(0, 10, nq)], base_int[rng.integers(0, 10, ng)], "euclidean"),
        (base_pm1[rng.integers(0, 8, nq)], base_pm1[rng.integers(0, 8, ng)], "cosine"),
    ]
    for qf, gf, metric in cases:
        qf, gf = qf.astype(np.float32), gf.astype(np.float32)
        q_g, q_q, g_g = _dists(qf, gf, metric)
        ref = reference_re_ranking(q_g, q_q, g_g, k1, k2, lam)
        np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1, k2, lam), ref, rtol=0, atol=TOL)
        got = rerank_features(qf, gf, metric=metric, k1=k1, k2=k2, lambda_value=lam)
        np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_api_on_arbitrary_matrices(dtype: type) -> None:
    """Non-symmetric matrices and heavy ties (values in {0, 1, 2}): the drop-in follows the reference's column rule."""
    rng = np.random.default_rng(7)
    for _ in range(4):
        nq, ng = int(rng.integers(5, 20)), int(rng.integers(20, 50))
        k1, k2 = int(rng.integers(2, 10)), int(rng.integers(1, 5))
        for make in (lambda s: rng.random(s), lambda s: rng.integers(0, 3, s)):
            q_g, q_q, g_g = (make(s).astype(dtype) for s in ((nq, ng), (nq, nq), (ng, ng)))
            copies = [x.copy() for x in (q_g, q_q, g_g)]
            ref = reference_re_ranking(q_g, q_q, g_g, k1, k2, 0.3)
            np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1, k2, 0.3), ref, rtol=0, atol=TOL)
            for before, after in zip(copies, (q_g, q_q, g_g), strict=True):
                np.testing.assert_array_equal(before, after)  # inputs untouched


def test_chunked_paths_equal_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny row blocks, transpose tiles and Jaccard budgets give the same numbers as the defaults."""
    import opreid_bench.evaluation.rerank as rr

    rng = np.random.default_rng(3)
    qf, gf = _clustered(rng, 30, 90)
    q_g, q_q, g_g = _dists(qf, gf, "euclidean")
    full = re_ranking(q_g, q_q, g_g)
    full_f = rerank_features(qf, gf)
    monkeypatch.setattr(rr, "_ROW_BLOCK_ELEMENTS", 17 * 120)
    monkeypatch.setattr(rr, "_TRANSPOSE_TILE", 5)
    monkeypatch.setattr(rr, "_JACCARD_PAIR_BUDGET", 400)
    np.testing.assert_array_equal(re_ranking(q_g, q_q, g_g), full)
    np.testing.assert_allclose(rerank_features(qf, gf), full_f, rtol=0, atol=1e-6)


def test_lambda_one_is_normalised_squared_distance() -> None:
    rng = np.random.default_rng(4)
    qf, gf = _clustered(rng, 8, 40)
    q_g, q_q, g_g = _dists(qf, gf, "euclidean")
    sq_max = np.maximum(np.max(q_q**2, axis=0), np.max(q_g**2, axis=1))
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, lambda_value=1.0), q_g**2 / sq_max[:, None], atol=1e-6)


def test_bad_inputs_raise_clear_errors() -> None:
    rng = np.random.default_rng(5)
    q_g, q_q, g_g = rng.random((4, 30)), rng.random((4, 4)), rng.random((30, 30))
    with pytest.raises(EvaluationError, match="shapes"):
        re_ranking(q_g, q_q, g_g[:10, :10])
    with pytest.raises(EvaluationError, match="k1"):
        re_ranking(q_g, q_q, g_g, k1=40)
    with pytest.raises(EvaluationError, match="lambda"):
        re_ranking(q_g, q_q, g_g, lambda_value=1.5)
    with pytest.raises(EvaluationError, match="metric"):
        rerank_features(rng.random((4, 3)), rng.random((30, 3)), metric="manhattan")
    with pytest.raises(EvaluationError, match="NaN"):
        rerank_features(np.full((4, 3), np.nan), rng.random((30, 3)))


def test_features_sharing_a_large_common_part_rerank_as_their_exact_distances() -> None:
    """Every feature moved by 100: float32 |a|^2 + |b|^2 - 2 a.b loses the differences unless the gallery's mean is
    taken out first, as the evaluator does; re-ranking then disagreed with the reference on exact distances."""
    rng = np.random.default_rng(7)
    qf = (rng.normal(0, 0.1, (20, 64)) + 100.0).astype(np.float32)
    gf = (rng.normal(0, 0.1, (60, 64)) + 100.0).astype(np.float32)

    def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = a.astype(np.float64), b.astype(np.float64)
        return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))

    want = reference_re_ranking(exact(qf, gf), exact(qf, qf), exact(gf, gf), k1=6, k2=3, lambda_value=0.3)
    got = rerank_features(qf, gf, k1=6, k2=3, lambda_value=0.3)
    assert np.abs(got - want).max() < 1e-3
    np.testing.assert_array_equal(np.argsort(got, axis=1, kind="stable")[:, :5],
                                  np.argsort(want, axis=1, kind="stable")[:, :5])


def test_identical_features_are_refused_in_words_not_as_nan() -> None:
    same = np.ones((4, 8), np.float32)
    with pytest.raises(EvaluationError, match="re-ranking needs features that differ"):
        rerank_features(same, same, k1=2, k2=1)
