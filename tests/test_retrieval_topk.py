"""Exact chunked top-k search equals a stable argsort; the faiss path (skipped without faiss) finds the same lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opreid_bench.errors import EvaluationError
from opreid_bench.evaluation.distances import compute_distances
from opreid_bench.evaluation.retrieval import merge_topk, stable_topk, topk_from_distmat, topk_search


def _argsort_topk(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


@pytest.mark.parametrize("k", [1, 3, 7, 40])
def test_stable_topk_with_many_ties(k: int) -> None:
    rng = np.random.default_rng(k)
    d = rng.integers(0, 4, size=(50, 40)).astype(np.float32)  # almost every value tied
    d[0] = 0.0
    d[1, :] = -0.0  # -0.0 and 0.0 are equal, as for numpy
    d[1, ::2] = 0.0
    vals, idx = stable_topk(torch.from_numpy(d), k)
    ref_v, ref_i = _argsort_topk(d, k)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    np.testing.assert_array_equal(vals.numpy(), ref_v)


def test_merge_keeps_index_order_across_chunks() -> None:
    rng = np.random.default_rng(0)
    d = rng.integers(0, 3, size=(20, 60)).astype(np.float32)
    t = torch.from_numpy(d)
    bv, bi = stable_topk(t[:, :25], 10)
    nv, ni = stable_topk(t[:, 25:], 10)
    v, i = merge_topk(bv, bi, nv, ni + 25, 10)
    np.testing.assert_array_equal(i.numpy(), _argsort_topk(d, 10)[1])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_topk_search_equals_full_argsort(metric: str) -> None:
    rng = np.random.default_rng(1)
    qf = rng.normal(size=(37, 8)).astype(np.float32)
    gf = rng.normal(size=(211, 8)).astype(np.float32)
    gf[100:110] = gf[5]  # duplicated gallery items: tied distances, kept in gallery order
    full = compute_distances(qf, gf, metric)
    ref_v, ref_i = _argsort_topk(full, 15)
    for q_chunk, g_chunk in [(None, None), (4, 17), (37, 211), (1, 1000)]:
        res = topk_search(qf, gf, 15, metric=metric, query_chunk=q_chunk, gallery_chunk=g_chunk)
        np.testing.assert_array_equal(res.indices, ref_i)
        np.testing.assert_allclose(res.distances, ref_v, atol=1e-5)
    assert topk_search(qf, gf, 500, metric=metric).indices.shape == (37, 211)  # k capped at the gallery size


def test_features_sharing_a_large_common_part_rank_as_evaluate_ranks_them() -> None:
    """Every feature moved by 1000: float32 |q|^2 + |g|^2 - 2 q.g loses the differences unless the common part is
    taken out first, and search would rank otherwise than evaluate (and than the exact float64 distances)."""
    rng = np.random.default_rng(4)
    qf = (rng.random((40, 32)) * 0.3 + 1000.0).astype(np.float32)
    gf = (rng.random((300, 32)) * 0.3 + 1000.0).astype(np.float32)
    exact = np.sqrt(((qf.astype(np.float64)[:, None, :] - gf.astype(np.float64)[None]) ** 2).sum(-1))
    want = np.argsort(exact, axis=1, kind="stable")[:, :5]
    got = topk_search(qf, gf, 5, metric="euclidean")
    np.testing.assert_array_equal(got.indices, want)
    np.testing.assert_array_equal(got.indices, _argsort_topk(compute_distances(qf, gf), 5)[1])
    np.testing.assert_allclose(got.distances, np.take_along_axis(exact, want, 1), rtol=1e-3)


def test_topk_from_distmat_and_errors() -> None:
    rng = np.random.default_rng(2)
    d = rng.integers(0, 5, size=(9, 30)).astype(np.float32)
    res = topk_from_distmat(d, 6, memory_mb=0.0001)
    np.testing.assert_array_equal(res.indices, _argsort_topk(d, 6)[1])
    with pytest.raises(EvaluationError, match="k must be"):
        topk_search(d, d, 0)
    with pytest.raises(EvaluationError, match="dim"):
        topk_search(rng.random((3, 4)), rng.random((5, 3)), 2)
    with pytest.raises(EvaluationError, match="metric"):
        topk_search(rng.random((3, 4)), rng.random((5, 4)), 2, metric="l1")


def test_faiss_flat_matches_exact_and_ivf_is_reasonable() -> None:
    pytest.importorskip("faiss")
    from opreid_bench.evaluation.ann import AnnConfig, ann_topk, recall_at_k
    from opreid_bench.evaluation.rerank import rerank_features

    rng = np.random.default_rng(3)
    centers = rng.normal(size=(20, 16))
    qf = (centers[rng.integers(0, 20, 40)] + 0.3 * rng.normal(size=(40, 16))).astype(np.float32)
    gf = (centers[rng.integers(0, 20, 400)] + 0.3 * rng.normal(size=(400, 16))).astype(np.float32)
    for metric in ("euclidean", "cosine"):
        exact = topk_search(qf, gf, 10, metric=metric)
        flat = ann_topk(qf, gf, 10, metric=metric, ann="flat")
        assert recall_at_k(flat.indices, exact.indices) == 1.0
        np.testing.assert_allclose(flat.distances, exact.distances, atol=1e-4)
        ivf = ann_topk(qf, gf, 10, metric=metric, ann=AnnConfig("ivf", nlist=8, nprobe=8))  # all cells: exact
        assert recall_at_k(ivf.indices, exact.indices) == 1.0
        ivf1 = ann_topk(qf, gf, 10, metric=metric, ann=AnnConfig("ivf", nlist=8, nprobe=1, seed=1))
        assert (ivf1.indices >= 0).all() and recall_at_k(ivf1.indices, exact.indices) > 0.5
        # re-ranking with faiss neighbour lists: a flat index reproduces the exact result
        np.testing.assert_allclose(
            rerank_features(qf, gf, metric=metric, ann="flat"), rerank_features(qf, gf, metric=metric), atol=1e-5
        )


def test_faiss_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from opreid_bench.evaluation import ann

    real_import = builtins.__import__

    def no_faiss(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    assert not ann.faiss_available()
    with pytest.raises(ann.FaissMissingError, match=r"opreid-bench\[faiss\]"):
        ann.ann_topk(np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32), 2)
