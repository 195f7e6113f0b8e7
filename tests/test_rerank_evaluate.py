"""`opreid-bench evaluate --rerank`: the report equals evaluate_distmat on rerank_features' distances."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from opreid_bench.cli import main
from opreid_bench.evaluation.features import FeatureSet, write_feature_file
from opreid_bench.evaluation.metrics import evaluate_distmat
from opreid_bench.evaluation.rerank import rerank_features


def test_evaluate_rerank_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(8, 12))
    q_p, g_p = rng.integers(0, 8, 16), rng.integers(0, 8, 70)
    query = FeatureSet((centers[q_p] + 0.8 * rng.normal(size=(16, 12))).astype(np.float32), q_p,
                       rng.integers(0, 3, 16), occluded=rng.random(16) < 0.5)
    gallery = FeatureSet((centers[g_p] + 0.8 * rng.normal(size=(70, 12))).astype(np.float32), g_p,
                         rng.integers(0, 3, 70), occluded=rng.random(70) < 0.3)
    path = tmp_path / "f.h5"
    write_feature_file(path, query, gallery)
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--features", str(path), "--rerank", "--k1", "10", "--k2", "3", "--lambda", "0.4",
              "--json"])
    assert exc.value.code == 0
    got = json.loads(capsys.readouterr().out)
    dist = rerank_features(query.features, gallery.features, k1=10, k2=3, lambda_value=0.4)
    ref = evaluate_distmat(dist, q_p, g_p, query.camids, gallery.camids, junk="market").to_dict()
    for key in ("rank1", "rank5", "mAP", "mINP", "num_valid_queries"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12)
    assert set(got["breakdown"]) >= {"occluded_query", "holistic_gallery"}
    cols = np.flatnonzero(~gallery.occluded)
    hol = evaluate_distmat(dist[:, cols], q_p, g_p[cols], query.camids, gallery.camids[cols], junk="market")
    assert got["breakdown"]["holistic_gallery"]["mAP"] == pytest.approx(hol.mAP, abs=1e-12)
    # re-ranking changes the numbers: the flag is not silently ignored
    with pytest.raises(SystemExit):
        main(["evaluate", "--features", str(path), "--json"])
    plain = json.loads(capsys.readouterr().out)
    assert plain["mAP"] != got["mAP"]
