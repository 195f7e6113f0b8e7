"""`opreid-bench search`: CSV of ranked gallery items per query (exact, re-ranked, faiss), JSON summary, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from opreid_bench.cli import main
from opreid_bench.evaluation.distances import compute_distances
from opreid_bench.evaluation.features import FeatureSet, write_feature_file
from opreid_bench.evaluation.rerank import rerank_features


@pytest.fixture()
def feats(tmp_path: Path) -> tuple[Path, FeatureSet, FeatureSet]:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 8))
    q_p, g_p = rng.integers(0, 6, 12), rng.integers(0, 6, 60)
    query = FeatureSet((centers[q_p] + 0.4 * rng.normal(size=(12, 8))).astype(np.float32), q_p, np.zeros(12, int),
                       paths=[f"q/{i:03d}.jpg" for i in range(12)])
    gallery = FeatureSet((centers[g_p] + 0.4 * rng.normal(size=(60, 8))).astype(np.float32), g_p, np.ones(60, int),
                         paths=[f"g/{i:03d}.jpg" for i in range(60)])
    path = tmp_path / "feats.h5"
    write_feature_file(path, query, gallery, attrs={"metric": "cosine"})
    return path, query, gallery


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code), out.out, out.err


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_exact_search_csv(feats, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    path, query, gallery = feats
    out = tmp_path / "res.csv"
    code, stdout, _ = _run(["search", "--features", str(path), "--topk", "5", "--out", str(out), "--json"], capsys)
    assert code == 0
    summary = json.loads(stdout)  # exactly one JSON object
    assert summary["metric"] == "cosine" and summary["rows"] == 60 and summary["topk"] == 5
    rows = _read(out)
    assert list(rows[0]) == ["query_index", "query_path", "rank", "gallery_index", "gallery_path", "distance",
                             "same_pid"]
    assert len(rows) == 12 * 5
    expected = np.argsort(compute_distances(query.features, gallery.features, "cosine"), axis=1, kind="stable")
    for row in rows:
        qi, rank, gi = int(row["query_index"]), int(row["rank"]), int(row["gallery_index"])
        assert gi == expected[qi, rank - 1]
        assert row["query_path"] == f"q/{qi:03d}.jpg" and row["gallery_path"] == f"g/{gi:03d}.jpg"
        assert int(row["same_pid"]) == int(query.pids[qi] == gallery.pids[gi])
    assert summary["top1_same_pid"] == pytest.approx(
        np.mean(query.pids == gallery.pids[expected[:, 0]]))


def test_rerank_search_and_table(feats, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    path, query, gallery = feats
    out = tmp_path / "rr.csv"
    code, stdout, _ = _run(["search", "--features", str(path), "--topk", "3", "--out", str(out), "--metric",
                            "euclidean", "--rerank", "--k1", "8", "--k2", "3", "--lambda", "0.2"], capsys)
    assert code == 0 and "rank 1" in stdout  # the preview table
    dist = rerank_features(query.features, gallery.features, metric="euclidean", k1=8, k2=3, lambda_value=0.2)
    expected = np.argsort(dist, axis=1, kind="stable")[:, :3]
    got = np.array([int(r["gallery_index"]) for r in _read(out)]).reshape(12, 3)
    np.testing.assert_array_equal(got, expected)


def test_ann_search(feats, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    pytest.importorskip("faiss")
    path, _, _ = feats
    exact, approx = tmp_path / "exact.csv", tmp_path / "ann.csv"
    assert _run(["search", "--features", str(path), "--topk", "4", "--out", str(exact), "--json"], capsys)[0] == 0
    code, _, _ = _run(["search", "--features", str(path), "--topk", "4", "--out", str(approx), "--ann", "flat",
                       "--json"], capsys)
    assert code == 0
    assert [r["gallery_index"] for r in _read(exact)] == [r["gallery_index"] for r in _read(approx)]


def test_missing_file_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, err = _run(["search", "--features", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "x.csv")],
                             capsys)
    assert code == 2 and stdout == ""
    assert "nope.h5" in err and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()
