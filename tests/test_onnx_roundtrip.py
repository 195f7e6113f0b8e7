"""Issue 12: a tiny `ours` model trained one step, exported with `opreid-bench export`, evaluated through `--onnx`
(no preprocessing options: they come from the model's metadata) and through `--weights`: same metrics to 1e-6;
`extract --onnx` records the preprocessing; `evaluate --onnx --run-dir` makes a measured leaderboard row.

ResNet-50 at 32x16: an untrained MobileNetV2's feature maps are ~1e-10, below GeM's clamp, so every crop would get
the same feature and the rankings would be ties decided by rounding.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx_helpers import cli_error, cli_ok, cuhk03_tree  # noqa: E402

from opreid_bench.engine.onnx_runner import write_onnx_run  # noqa: E402
from opreid_bench.evaluation.features import read_feature_file  # noqa: E402
from opreid_bench.leaderboard.rows import load_runs  # noqa: E402

METRICS = ("rank1", "rank5", "rank10", "mAP", "mINP")
DATA = ["--dataset", "cuhk03_labeled"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("onnx_roundtrip")
    root = cuhk03_tree(tmp / "data")
    run = tmp / "run"
    cli_ok(["train", "--method", "ours", *DATA, "--root", root, "--out", run, "--backbone", "resnet50",
            "--epochs", "1", "--height", "32", "--width", "16", "--batch-p", "3", "--batch-k", "4",
            "--set", "optim.max_iters_per_epoch=1", "--json"])
    model = tmp / "ours.onnx"
    info = cli_ok(["export", "--weights", run / "model.pt", "--out", model, "--json"])
    return {"root": root, "weights": run / "model.pt", "onnx": model, "info": info, "tmp": tmp}


def test_export_writes_the_inference_graph_with_its_preprocessing(exported: dict) -> None:
    info = exported["info"]
    assert info["method"] == "ours" and info["feature"] == "pooled+ME" and info["input_size"] == "32x16"
    assert info["max_abs_diff"] <= 1e-4
    proto = onnx.load(str(exported["onnx"]))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["opreid_bench.input_size"] == "32x16"
    assert [float(v) for v in meta["opreid_bench.mean"].split(",")] == [0.485, 0.456, 0.406]
    assert [float(v) for v in meta["opreid_bench.std"].split(",")] == [0.229, 0.224, 0.225]
    assert meta["opreid_bench.channel_order"] == "RGB" and meta["opreid_bench.metric"] == "cosine"
    assert [o.name for o in proto.graph.output] == ["features"]
    names = [i.name for i in proto.graph.initializer]
    assert not [n for n in names if n.startswith(("classifier", "rp_branch"))], names


def test_round_trip_onnx_and_weights_give_the_same_metrics(exported: dict) -> None:
    root = exported["root"]
    by_weights = cli_ok(["evaluate", "--weights", exported["weights"], *DATA, "--root", root, "--json"])
    by_onnx = cli_ok(["evaluate", "--onnx", exported["onnx"], *DATA, "--root", root, "--json"])
    assert by_onnx["num_valid_queries"] == by_weights["num_valid_queries"] == 8
    for key in METRICS:
        assert abs(by_onnx[key] - by_weights[key]) <= 1e-6, (key, by_onnx[key], by_weights[key])


def test_extract_onnx_records_model_and_preprocessing(exported: dict) -> None:
    tmp, root = exported["tmp"], exported["root"]
    cli_ok(["extract", "--onnx", exported["onnx"], *DATA, "--root", root, "--out", tmp / "onnx.h5", "--json"])
    cli_ok(["extract", "--weights", exported["weights"], *DATA, "--root", root, "--out", tmp / "pt.h5", "--json"])
    q_onnx, g_onnx, attrs = read_feature_file(tmp / "onnx.h5")
    q_pt, g_pt, _ = read_feature_file(tmp / "pt.h5")
    assert attrs["model_format"] == "onnx" and attrs["onnx"] == str(exported["onnx"])
    assert (attrs["height"], attrs["width"], attrs["channel_order"]) == (32, 16, "RGB")
    assert list(attrs["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(attrs["preprocessing_from"])["mean"] == "metadata"
    assert attrs["method"] == "ours" and attrs["metric"] == "cosine" and len(attrs["onnx_sha256"]) == 64
    for a, b in ((q_onnx, q_pt), (g_onnx, g_pt)):
        assert a.paths == b.paths
        assert np.abs(np.asarray(a.features) - np.asarray(b.features)).max() <= 1e-4


def test_onnx_run_becomes_a_measured_leaderboard_row(exported: dict, capsys: pytest.CaptureFixture[str]) -> None:
    tmp, root = exported["tmp"], exported["root"]
    runs = tmp / "runs" / "my-onnx"
    report = cli_ok(["evaluate", "--onnx", exported["onnx"], *DATA, "--root", root, "--run-dir", runs,
                     "--name", "my-onnx", "--json"])
    info = json.loads((runs / "run.json").read_text())
    assert info["metrics_unit"] == "fraction" and info["model_format"] == "onnx"
    assert info["source"] == f"onnx: {exported['onnx']}"
    assert info["preprocessing"] == {"height": 32, "width": 16, "mean": [0.485, 0.456, 0.406],
                                     "std": [0.229, 0.224, 0.225], "channel_order": "RGB"}
    (row,) = load_runs([tmp / "runs"])
    assert row.method == "my-onnx" and row.dataset == "cuhk03_labeled" and row.source == str(runs)
    assert row.details["model_format"] == "onnx" and (row.details["height"], row.details["width"]) == (32, 16)
    # the backbone and epochs `export` wrote into the model's metadata, shown as a trained run's are
    assert (info["backbone"], info["epochs"]) == ("resnet50", 1)
    assert (row.details["backbone"], row.details["epochs"]) == ("resnet50", 1)
    assert row.rank1 == pytest.approx(round(100 * report["rank1"], 2))
    assert row.mAP == pytest.approx(round(100 * report["mAP"], 2))
    board = cli_ok(["leaderboard", "--runs", tmp / "runs", "--dataset", "cuhk03_labeled", "--json"])
    assert "my-onnx" in json.dumps(board)
    # the same dataset read with loader options is another protocol: kept beside the standard result, not over it
    attrs = {"dataset": "cuhk03_labeled", "onnx": info["onnx"], "onnx_sha256": info["onnx_sha256"],
             "dataset_options": "query_folder=partial"}
    write_onnx_run(runs, name="my-onnx", attrs=attrs, metrics={"rank1": 0.5, "mAP": 0.25})
    results = json.loads((runs / "run.json").read_text())["results"]
    assert results["cuhk03_labeled"]["rank1"] == report["rank1"]
    assert results["cuhk03_labeled (query_folder=partial)"] == {"rank1": 0.5, "mAP": 0.25,
                                                                "dataset_options": "query_folder=partial"}
    assert {r.dataset for r in load_runs([tmp / "runs"])} == {"cuhk03_labeled", "cuhk03_labeled (query_folder=partial)"}
    # a run.json that evaluate --onnx did not write is never replaced
    foreign = tmp / "runs" / "foreign"
    foreign.mkdir()
    (foreign / "run.json").write_text('{"method": "x"}\n')
    line = cli_error(["evaluate", "--onnx", exported["onnx"], *DATA, "--root", root, "--run-dir", foreign], capsys)
    assert "was not written by" in line and (foreign / "run.json").read_text() == '{"method": "x"}\n'
    # nor is a run.json added to a folder of the user's own files
    drafts = tmp / "drafts"
    drafts.mkdir()
    (drafts / "paper_draft.tex").write_text("mine\n")
    line = cli_error(["evaluate", "--onnx", exported["onnx"], *DATA, "--root", root, "--run-dir", drafts], capsys)
    assert "holds files `evaluate` did not write (e.g. paper_draft.tex)" in line
    assert sorted(p.name for p in drafts.iterdir()) == ["paper_draft.tex"]
