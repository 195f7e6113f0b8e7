"""evaluate_distmat against an independent plain-loop eval_market1501, hand-computed cases and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opreid_bench.errors import EvaluationError
from opreid_bench.evaluation.metrics import evaluate_distmat, merge_results


def reference(distmat, q_pids, g_pids, q_camids, g_camids, junk="market", max_rank=50):
    """Plain loops, as written in the standard implementations: full stable sort per query."""
    firsts, aps, inps, valid = [], [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        raw = []
        for g in order:
            same_pid = g_pids[g] == q_pids[i]
            if junk == "market" and same_pid and g_camids[g] == q_camids[i]:
                continue  # junk: same person seen by the same camera
            raw.append(1 if same_pid else 0)
        if sum(raw) == 0:
            continue
        hits, precisions, last = 0, [], 0
        for r, m in enumerate(raw):
            if m:
                hits += 1
                precisions.append(hits / (r + 1))
                last = r
        firsts.append(raw.index(1))
        aps.append(sum(precisions) / len(precisions))
        inps.append(hits / (last + 1))
        valid.append(i)
    cmc = np.array([np.mean([f < k for f in firsts]) for k in range(1, max_rank + 1)]) if firsts else None
    return np.array(firsts, dtype=int), np.array(aps), np.array(inps), np.array(valid, dtype=int), cmc


def assert_matches_reference(d, qp, gp, qc, gc, junk, max_rank=10):
    f, a, i, v, cmc = reference(d, qp, gp, qc, gc, junk, max_rank)
    if v.size == 0:
        with pytest.raises(EvaluationError, match="no valid query"):
            evaluate_distmat(d, qp, gp, qc, gc, junk=junk, max_rank=max_rank)
        r = evaluate_distmat(d, qp, gp, qc, gc, junk=junk, max_rank=max_rank, allow_no_valid=True)
        assert r.num_valid_queries == 0 and r.num_skipped_queries == d.shape[0]
        return
    r = evaluate_distmat(d, qp, gp, qc, gc, junk=junk, max_rank=max_rank)
    np.testing.assert_array_equal(r.valid_query_index, v)
    np.testing.assert_array_equal(r.first_hit, f)
    np.testing.assert_allclose(r.ap, a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.inp, i, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.cmc, cmc, rtol=0, atol=1e-12)
    assert r.mAP == pytest.approx(a.mean(), abs=1e-12)
    assert r.mINP == pytest.approx(i.mean(), abs=1e-12)
    assert r.num_valid_queries == v.size and r.num_skipped_queries == d.shape[0] - v.size


@st.composite
def ranking_case(draw, values=None):
    nq = draw(st.integers(1, 6))
    ng = draw(st.integers(1, 40))
    n_pids = draw(st.integers(1, 5))
    n_cams = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16, np.int64]))
    if values is None:
        d = rng.random((nq, ng)) * 4 - 1
    else:  # tie-heavy: every distance from a tiny set (incl. -0.0 and 0.0, which are equal)
        d = rng.choice(np.array(values), size=(nq, ng))
    d = d.astype(dtype) if dtype is not np.int64 else np.round(d * 2).astype(np.int64)
    qp, gp = rng.integers(0, n_pids, nq), rng.integers(0, n_pids, ng)
    qc, gc = rng.integers(0, n_cams, nq), rng.integers(0, n_cams, ng)
    return d, qp, gp, qc, gc


@settings(max_examples=150, deadline=None)
@given(ranking_case(), st.sampled_from(["market", "none"]))
def test_random_matches_reference(case, junk):
    assert_matches_reference(*case, junk)


@settings(max_examples=150, deadline=None)
@given(ranking_case(values=[-0.0, 0.0, 0.5, 1.0]), st.sampled_from(["market", "none"]))
def test_tie_heavy_matches_reference(case, junk):
    assert_matches_reference(*case, junk)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["market", "none"]), st.booleans())
def test_long_rows_and_junk_heavy_match_reference(seed, junk, ties):
    """Galleries over 2,048 candidates (the long-row path), one or two pids: junk everywhere."""
    rng = np.random.default_rng(seed)
    nq, ng = 3, 2600
    d = rng.integers(0, 50, (nq, ng)).astype(np.float32) if ties else rng.random((nq, ng), dtype=np.float32)
    qp, gp = rng.integers(0, 2, nq), rng.integers(0, 2, ng)
    qc, gc = rng.integers(0, 2, nq), rng.integers(0, 2, ng)
    assert_matches_reference(d, qp, gp, qc, gc, junk, max_rank=50)


def test_hand_computed_market_and_none():
    # sorted gallery: g0 (pid 2), g1 (pid 1, cam 1), g2 (pid 1, cam 0 = junk), g3 (pid 3), g4 (pid 1, cam 1)
    d = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]], dtype=np.float32)
    gp, gc = np.array([2, 1, 1, 3, 1]), np.array([1, 1, 0, 1, 1])
    r = evaluate_distmat(d, [1], gp, [0], gc, junk="market", max_rank=5)
    # after junk removal: [F, T, F, T] -> true matches at 0-based ranks 1 and 3
    assert r.first_hit.tolist() == [1]
    assert r.ap[0] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert r.inp[0] == pytest.approx(2 / 4)
    assert r.cmc.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert r.to_dict() == {"rank1": 0.0, "rank5": 1.0, "rank10": 1.0, "mAP": 0.5, "mINP": 0.5,
                           "num_valid_queries": 1, "num_skipped_queries": 0}
    r = evaluate_distmat(d, [1], gp, [0], gc, junk="none", max_rank=5)
    # nothing removed: [F, T, T, F, T] -> ranks 1, 2, 4
    assert r.ap[0] == pytest.approx((1 / 2 + 2 / 3 + 3 / 5) / 3)
    assert r.inp[0] == pytest.approx(3 / 5)


def test_ties_keep_gallery_order():
    d = np.array([[0.5, 0.5, 0.5, 0.2]], dtype=np.float32)
    r = evaluate_distmat(d, [1], [2, 1, 2, 3], [0], [1, 1, 1, 1])
    # order: g3, g0, g1, g2 (stable) -> the match g1 is at rank 2, after g0 that ties with it
    assert r.first_hit.tolist() == [2]
    assert r.ap[0] == pytest.approx(1 / 3)


def test_skipped_queries_are_counted():
    d = np.array([[0.1, 0.2], [0.3, 0.4], [0.2, 0.1]])
    # query 0: its only match (gallery 0) is junk; query 1: pid absent; query 2: match at rank 0
    r = evaluate_distmat(d, [1, 7, 2], [1, 2], [0, 0, 0], [0, 1])
    assert r.num_valid_queries == 1 and r.num_skipped_queries == 2
    assert r.valid_query_index.tolist() == [2]
    assert r.first_hit.tolist() == [0]


def test_chunks_merge_exactly():
    rng = np.random.default_rng(0)
    d = rng.random((37, 300), dtype=np.float32)
    qp, gp = rng.integers(0, 20, 37), rng.integers(0, 20, 300)
    qc, gc = rng.integers(0, 4, 37), rng.integers(0, 4, 300)
    full = evaluate_distmat(d, qp, gp, qc, gc)
    parts = [(s, min(s + 8, 37), evaluate_distmat(d[s:s + 8], qp[s:s + 8], gp, qc[s:s + 8], gc, allow_no_valid=True))
             for s in range(0, 37, 8)]
    merged = merge_results(parts)
    assert merged.to_dict() == full.to_dict()
    np.testing.assert_array_equal(merged.ap, full.ap)
    np.testing.assert_array_equal(merged.valid_query_index, full.valid_query_index)
    np.testing.assert_array_equal(merged.cmc, full.cmc)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"distmat": np.array([[0.1, np.nan]])}, "NaN/inf"),
    ({"distmat": np.array([[0.1, np.inf]])}, "NaN/inf"),
    ({"distmat": np.array([[np.finfo(np.float32).max] * 2], dtype=np.float32)}, None),  # row sum overflows: fine
    ({"distmat": np.zeros((0, 2))}, "empty query"),
    ({"distmat": np.zeros((1, 0))}, "empty gallery"),
    ({"distmat": np.zeros(2)}, "2-D"),
    ({"q_pids": [1, 1]}, "q_pids has 2 entries"),
    ({"g_camids": [0]}, "g_camids has 1 entries"),
    ({"g_pids": [0.5, 1.0]}, "integers"),
    ({"junk": "duke"}, "junk must be"),
    ({"max_rank": 0}, "max_rank"),
])
def test_bad_input(kwargs, message):
    args = {"distmat": np.array([[0.1, 0.2]]), "q_pids": [1], "g_pids": [1, 2], "q_camids": [0], "g_camids": [1, 1]}
    args.update(kwargs)
    call = lambda: evaluate_distmat(args["distmat"], args["q_pids"], args["g_pids"], args["q_camids"],  # noqa: E731
                                    args["g_camids"], junk=args.get("junk", "market"),
                                    max_rank=args.get("max_rank", 50))
    if message is None:
        assert call().num_valid_queries == 1
    else:
        with pytest.raises(EvaluationError, match=message):
            call()


def test_no_valid_query_error_message():
    with pytest.raises(EvaluationError, match="no valid query.*junk='market'"):
        evaluate_distmat(np.array([[0.1]]), [1], [1], [0], [0])
    r = evaluate_distmat(np.array([[0.1]]), [1], [1], [0], [0], junk="none")
    assert r.to_dict()["rank1"] == 1.0
