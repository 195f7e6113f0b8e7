"""`opreid-bench evaluate`: JSON output, table, exit codes and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from opreid_bench.cli import cli, main
from opreid_bench.evaluation import FeatureSet, evaluate_features, write_feature_file

KEYS = {"rank1", "rank5", "rank10", "mAP", "mINP", "num_valid_queries", "num_skipped_queries"}


@pytest.fixture(scope="module")
def feature_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((20, 8))

    def side(n, occluded):
        pids = rng.integers(0, 20, n)
        feats = (centers[pids] + 0.7 * rng.standard_normal((n, 8))).astype(np.float32)
        return FeatureSet(feats, pids, rng.integers(0, 3, n), occluded=occluded(n))

    q = side(40, lambda n: rng.random(n) < 0.4)
    g = side(150, lambda n: rng.random(n) < 0.4)
    path = tmp_path_factory.mktemp("cli") / "feats.h5"
    write_feature_file(path, q, g, {"dataset": "toy"})
    return path, q, g


def run_main(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_json_output_is_one_object_equal_to_the_api(feature_file, capsys):
    path, q, g = feature_file
    code, out, err = run_main(["evaluate", "--features", str(path), "--metric", "cosine", "--json"], capsys)
    assert code == 0
    assert err == ""  # a progress bar on a stream that is not a terminal leaves nothing (no empty lines)
    data = json.loads(out)  # exactly one JSON object on stdout
    settings = {"metric": "cosine", "junk": "market", "rerank": None}  # how the ranking was made
    assert set(data) >= KEYS | set(settings) and set(data) <= KEYS | set(settings) | {"breakdown"}
    expected = evaluate_features(q, g, metric="cosine", device="cpu").to_dict()
    assert data == json.loads(json.dumps({**expected, **settings}))
    assert all(0.0 <= data[k] <= 1.0 for k in ("rank1", "rank5", "rank10", "mAP", "mINP"))
    assert set(data["breakdown"]) == {"occluded_query", "holistic_query", "holistic_gallery", "occluded_gallery"}


def test_bootstrap_junk_and_out_file(feature_file, capsys, tmp_path):
    path, q, g = feature_file
    out_file = tmp_path / "report.json"
    args = ["evaluate", "--features", str(path), "--junk", "none", "--bootstrap", "50", "--seed", "3",
            "--max-rank", "5", "--out", str(out_file), "--json"]
    code, out, _ = run_main(args, capsys)
    assert code == 0
    data = json.loads(out)
    assert data["ci"]["resamples"] == 50 and data["ci"]["seed"] == 3 and len(data["ci"]["mAP"]) == 2
    assert json.loads(out_file.read_text()) == {"written_by": "opreid-bench evaluate", "input": str(path), **data}
    assert data["junk"] == "none" and data["rerank"] is None
    code, out, _ = run_main(["evaluate", "--features", str(path), "--rerank", "--k1", "4", "--k2", "2", "--json"],
                            capsys)
    assert code == 0 and json.loads(out)["rerank"] == {"k1": 4, "k2": 2, "lambda": 0.3}
    expected = evaluate_features(q, g, junk="none", max_rank=5, device="cpu").to_dict()
    assert data["mAP"] == expected["mAP"]


def test_junk_default_comes_from_file_attribute(tmp_path, feature_file, capsys):
    _, q, g = feature_file
    path = tmp_path / "cross.h5"
    write_feature_file(path, q, g, {"junk": "none"})
    _, out, _ = run_main(["evaluate", "--features", str(path), "--json"], capsys)
    assert json.loads(out)["mAP"] == evaluate_features(q, g, junk="none", device="cpu").overall.mAP


def test_table_output(feature_file):
    path, _, _ = feature_file
    result = CliRunner().invoke(cli, ["evaluate", "--features", str(path), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    for word in ("overall", "occluded_query", "holistic_gallery", "mAP", "95% CI"):
        assert word in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["evaluate", "--features", "/nonexistent/feats.h5"], "/nonexistent/feats.h5: no such feature file"),
    (["evaluate"], "exactly one input"),
])
def test_errors_are_one_line_with_exit_2(args, message, capsys):
    code, out, err = run_main(args, capsys)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_wrong_layout_names_the_dataset(tmp_path, capsys):
    import h5py

    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("query/features", data=np.zeros((2, 3)))
    code, _, err = run_main(["evaluate", "--features", str(path)], capsys)
    assert code == 2 and f"{path}: missing dataset /query/pids" in err


def test_help_has_examples():
    result = CliRunner().invoke(cli, ["evaluate", "--help"])
    assert result.exit_code == 0 and "opreid-bench evaluate --features feats.h5" in result.output
