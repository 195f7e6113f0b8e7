"""`opreid-bench demo` and `opreid-bench synth` from the command line (tiny settings, seconds), the demo's automatic
backbone choice and recipe, its shipped protocol, and the compact `resnet_mini` backbone it trains from scratch."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from opreid_bench.cli import cli, main

# A split small enough to build and train in seconds: 4 queries, 12-20 gallery crops, 16 training identities (one
# 16 x 4 batch of the resnet_mini recipe).
TINY_PROTOCOL = """kind: split
name: tiny-demo
query: {ids: 4, images: 4, images_per_id: [1, 1]}
gallery:
  ids: 6
  images: 14
  per_query_id: {occluded: 1, holistic: 1}
  distractor_per_id: {occluded: [1, 3], holistic: [1, 3]}
train: {ids: 16, images: 96, images_per_id: [4, 8], occluded_fraction: 0.15}
"""


def _invoke(args: list[str]):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_synth_cli_writes_a_deterministic_pool(tmp_path: Path) -> None:
    args = ["synth", "--ids", "3", "--cameras", "2", "--images-per-id", "2", "3", "--size", "32", "64", "--seed", "4"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert _invoke([*args, "--out", str(a)]).exit_code == 0
    result = _invoke([*args, "--out", str(b), "--workers", "2"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((a / "manifest.csv").open()))
    assert 3 * 2 <= len(rows) <= 3 * 3
    assert {r["pid"] for r in rows} == {"1", "2", "3"}
    with Image.open(a / rows[0]["path"]) as img:
        assert img.size == (32, 64)
    assert len((a / "keypoints.csv").read_text().splitlines()) == len(rows) + 1
    for name in ("manifest.csv", "keypoints.csv", rows[-1]["path"]):  # same seed, same bytes, any number of workers
        assert (a / name).read_bytes() == (b / name).read_bytes()


def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the real entry point (which turns user errors into one line and exit code 2)."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code or 0), capsys.readouterr().err


def test_synth_cli_rejects_bad_image_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(["synth", "--out", str(tmp_path / "p"), "--images-per-id", "3", "2"], capsys)
    assert code == 2
    assert "--images-per-id" in err and "Traceback" not in err and not (tmp_path / "p").exists()


def test_demo_cli_tiny_run_writes_the_summary(tmp_path: Path) -> None:
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY_PROTOCOL)
    out = tmp_path / "demo"
    result = _invoke(["demo", "--out", str(out), "--ids", "40", "--epochs", "1", "--size", "64", "32",
                      "--protocol", str(protocol), "--clever-hans-ids", "2", "--seed", "3", "--ranks", "1"])
    assert result.exit_code == 0, result.output  # (16 training identities: one 16 x 4 batch, too few for 2 ranks)
    summary = json.loads((out / "demo_summary.json").read_text())
    for method in ("baseline", "ours"):
        assert 0.0 <= summary["metrics"][method]["mAP"] <= 1.0
        assert summary["metrics"][method]["num_valid_queries"] == 4
        assert (out / "runs" / method / "model.pt").is_file()
    assert summary["minutes"]["total"] > 0
    assert summary["config"]["backbone"] == "resnet_mini"  # no --pretrained: the compact backbone, from scratch
    assert summary["config"]["batch_p"] == 16 and summary["config"]["epochs"] == 1  # JSON numbers, not strings
    assert summary["config"]["images_per_id"] == [8, 20] and summary["config"]["pretrained"] is None
    hardware = summary["hardware"]  # the machine behind the minutes
    assert hardware["cores"] >= 1 and hardware["fp32_matmul_gflops"] > 0 and hardware["cpu"]
    assert "GFLOP/s fp32 matmul" in " ".join(result.output.split())  # and the final line says which
    with Image.open(next((out / "split" / "query").glob("*.jpg"))) as img:
        assert img.size == (32, 64)  # the pool is rendered at the input size
    assert "resnet_mini" in (out / "leaderboard.md").read_text()
    assert "SynthOcc demo" in result.output

    # The kept feature files are what `visualize` reads: the demo's rank lists, and the two models compared.
    from opreid_bench.evaluation.features import read_feature_file

    q, g, attrs = read_feature_file(out / "runs" / "ours" / "features.h5")
    assert len(q.pids) == 4 and attrs["junk"] == "market" and attrs["method"] == "ours"
    vis = _invoke(["visualize", "--features", str(out / "runs" / "ours" / "features.h5"), "--compare",
                   str(out / "runs" / "baseline" / "features.h5"), "--out", str(tmp_path / "vis"), "--topk", "5",
                   "--json"])
    assert vis.exit_code == 0, vis.output
    shown = json.loads(vis.output)
    ours_r1 = summary["metrics"]["ours"]["rank1"] * 4
    base_r1 = summary["metrics"]["baseline"]["rank1"] * 4
    assert round(ours_r1 - base_r1) == shown["a_wins"] - shown["b_wins"]  # the evaluator's rank-1, query by query


def test_demo_cli_rejects_a_missing_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(["demo", "--out", str(tmp_path / "d"), "--protocol", str(tmp_path / "no.yaml")], capsys)
    assert code == 2 and "no.yaml" in err and not (tmp_path / "d").exists()


def test_demo_picks_the_backbone_and_recipe(tmp_path: Path) -> None:
    from opreid_bench.demo import DEMO_RECIPES, DemoConfig, _method_config, resolve_config

    scratch = resolve_config(DemoConfig(out=tmp_path))
    assert (scratch.backbone, scratch.epochs, scratch.batch_p) == (
        "resnet_mini", DEMO_RECIPES["resnet_mini"]["epochs"], DEMO_RECIPES["resnet_mini"]["batch_p"])
    ours = _method_config("ours", scratch)
    assert ours.model.backbone == "resnet_mini" and ours.model.pretrained is None
    assert ours.optim.lr == DEMO_RECIPES["resnet_mini"]["lr"] and ours.data.batch_p == 16
    assert ours.model.dnl and ours.model.reconstructive_pooling and ours.data.cbe  # still the paper's method
    assert ours.optim.channels_last  # NHWC: part of the speed that fits the epochs in the five minutes
    assert ours.data.decoded_cache_mb * 2**20 > 2600 * 128 * 64 * 3  # the training crops are decoded once
    assert ours.loss.bed and ours.loss.bed_alpha == DEMO_RECIPES["resnet_mini"]["bed_alpha"] == 3.0
    assert _method_config("baseline", scratch).loss.bed_alpha == 0.3  # no BED loss there: left at the default
    # the same weight decay for both methods (the recipe's, not the paper's 5e-4)
    decay = DEMO_RECIPES["resnet_mini"]["weight_decay"]
    assert ours.optim.weight_decay == _method_config("baseline", scratch).optim.weight_decay == decay != 5e-4
    # progressive resizing: the first epochs at half size for both methods, the last ones at the test size
    low = _method_config("baseline", scratch).data.low_res_epochs
    assert ours.data.low_res_epochs == low and 0 < low < scratch.epochs
    short = resolve_config(DemoConfig(out=tmp_path, epochs=1))
    assert _method_config("ours", short).data.low_res_epochs == 0  # one epoch: at full size

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    tuned = resolve_config(DemoConfig(out=tmp_path, pretrained=str(weights)))
    assert (tuned.backbone, tuned.batch_p, tuned.ranks) == ("mobilenetv2", 8, 1)  # side by side, one process each
    assert (scratch.ranks, resolve_config(DemoConfig(out=tmp_path, ranks=3)).ranks) == (2, 3)
    cfg = _method_config("baseline", tuned)
    assert cfg.model.backbone == "mobilenetv2" and cfg.model.pretrained == str(weights)
    assert cfg.optim.max_iters_per_epoch == 20
    assert cfg.optim.weight_decay == 5e-4  # fine-tuning ImageNet weights keeps the method's own weight decay
    assert cfg.data.low_res_epochs == 0  # ImageNet features are learnt at full size: no progressive resizing
    assert _method_config("ours", tuned).loss.bed_alpha == 0.3  # the paper's alpha when fine-tuning ImageNet weights
    explicit = resolve_config(DemoConfig(out=tmp_path, backbone="mobilenetv2", epochs=3, batch_p=4))
    assert (explicit.backbone, explicit.epochs, explicit.batch_p) == ("mobilenetv2", 3, 4)


def test_demo_protocol_has_at_least_300_queries() -> None:
    from opreid_bench.demo import DemoConfig
    from opreid_bench.splits.protocol import load_protocol

    protocol = load_protocol(DemoConfig(out=Path("x")).protocol)
    assert protocol.query_images >= 300 and protocol.query_ids >= 300


@pytest.mark.parametrize("attention", ["non_local", "dnl"])
def test_resnet_mini_builds_trains_and_validates(attention: str) -> None:
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.modeling import build_model
    from opreid_bench.modeling.backbones import BACKBONES, build_backbone

    assert "resnet_mini" in BACKBONES.names()
    backbone = build_backbone("resnet_mini", last_stride=1)
    fmap = backbone(torch.randn(2, 3, 128, 64))
    assert fmap.shape == (2, backbone.out_channels, 8, 4)  # stride 16 with last stride 1
    assert build_backbone("resnet_mini", last_stride=2)(torch.randn(2, 3, 128, 64)).shape[2:] == (4, 2)
    method = "ours" if attention == "dnl" else "baseline"
    cfg = load_method_config(method, ["model.backbone=resnet_mini", "data.height=64", "data.width=32"])
    model = build_model(cfg.model, num_classes=5)
    assert len(model.backbone.attention) == len(model.backbone.attention_sites) > 0
    model.train()
    out = model(torch.randn(8, 3, 64, 32))
    assert out["logits"].shape == (8, 5)
    out["logits"].sum().backward()
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)


def test_demo_trains_each_method_data_parallel_and_deterministically(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """With ``ranks=2`` each method trains on two DDP processes: the run says so, each optimiser step takes two of
    the epoch's P x K batches (half as many steps as one process), rank 0's log lines carry the method's name, and
    the same seed gives bit-identical weights again (the gradient all-reduce adds no run-to-run noise)."""
    from opreid_bench import demo

    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY_PROTOCOL)
    weights, steps = {}, {}
    for name, ranks in (("ddp", 2), ("ddp_again", 2), ("single", 1)):
        if name != "ddp":  # the same pool, split and Clever Hans sets (reused, not rebuilt); the runs train anew
            shutil.copytree(tmp_path / "ddp", tmp_path / name, ignore=shutil.ignore_patterns("runs"))
        res = demo.run_demo(demo.DemoConfig(out=tmp_path / name, ids=40, epochs=1, height=64, width=32, seed=3,
                                            protocol=str(protocol), clever_hans_ids=2, progress=False, ranks=ranks,
                                            parallel=False, batch_p=4))
        assert set(res.runs) == {"baseline", "ours"}
        log = capfd.readouterr().err
        assert ("  baseline: epoch 1:" in log and "  ours: epoch 1:" in log) == (ranks > 1), log
        weights[name] = {m: _state_dict(torch.load(res.runs[m] / "model.pt", map_location="cpu",
                                                   weights_only=False)) for m in res.runs}
        steps[name] = {m: json.loads((res.runs[m] / "metrics.jsonl").read_text().splitlines()[-1])["iterations"]
                       for m in res.runs}
        hardware = json.loads((res.runs["ours"] / "run.json").read_text())["hardware"]
        assert hardware.startswith("2 x ") == (ranks > 1), hardware
    for method in ("baseline", "ours"):
        a, b = weights["ddp"][method], weights["ddp_again"][method]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), method
        assert steps["ddp"][method] == steps["single"][method] // 2, steps
    # the two methods are different runs (not one model saved twice)
    base, ours = weights["ddp"]["baseline"], weights["ddp"]["ours"]
    assert base.keys() != ours.keys() or any(not torch.equal(base[k], ours[k]) for k in base)


def test_demo_data_parallel_training_raises_a_failing_rank_error_instead_of_hanging(tmp_path: Path) -> None:
    """A rank that fails (here: no config to train) must not leave the parent waiting for the other rank."""
    from opreid_bench import demo

    job = demo._TrainJob("broken", None, tmp_path / "run", "fingerprint")
    started = time.perf_counter()
    with pytest.raises(AttributeError):
        demo._train_data_parallel(job, splits=None, ranks=2)
    assert time.perf_counter() - started < 120
    assert not (tmp_path / "run").exists()


def test_demo_trains_side_by_side_what_it_trains_one_after_the_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """With one process per method (the ImageNet recipe), baseline and ours train in two processes at once; each run
    must come out exactly as when the two train one after the other in the demo's own process (same thread count:
    one, as the suite runs torch)."""
    from opreid_bench import demo

    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY_PROTOCOL)
    monkeypatch.setattr(demo, "_cores", lambda: 2)  # one thread per process, as in this process
    weights = {}
    for parallel in (True, False):
        out = tmp_path / f"parallel_{parallel}"
        if not parallel:  # the same pool, split and Clever Hans sets (reused, not rebuilt); the runs train anew
            shutil.copytree(tmp_path / "parallel_True", out, ignore=shutil.ignore_patterns("runs"))
        res = demo.run_demo(demo.DemoConfig(out=out, ids=40, epochs=1, height=64, width=32, seed=3,
                                            protocol=str(protocol), clever_hans_ids=2, progress=False,
                                            ranks=1, parallel=parallel))
        assert set(res.runs) == {"baseline", "ours"}
        log = capfd.readouterr().err
        # side by side, each worker process prefixes its log lines with its method
        assert ("  baseline: epoch 1:" in log and "  ours: epoch 1:" in log) == parallel, log
        weights[parallel] = {m: _state_dict(torch.load(res.runs[m] / "model.pt", map_location="cpu",
                                                       weights_only=False)) for m in res.runs}
    for method in ("baseline", "ours"):
        a, b = weights[True][method], weights[False][method]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), method


def _state_dict(checkpoint: dict) -> dict:
    """The model weights inside a saved ``model.pt``."""
    return {k: v for k, v in checkpoint["model"].items() if torch.is_tensor(v)}


def test_demo_help_states_the_recipes_own_epochs() -> None:
    """The --epochs help quotes the recipe the demo runs, not a copy that goes stale when the recipe changes."""
    from opreid_bench.demo import DEMO_RECIPES, low_res_epochs

    scratch = DEMO_RECIPES["resnet_mini"]
    text = " ".join(_invoke(["demo", "--help"]).output.split())
    assert f"{scratch['epochs']} from random weights" in text
    assert f"the first {low_res_epochs(scratch['epochs'], scratch['low_res_share'])} at half size" in text
    assert f"{DEMO_RECIPES['mobilenetv2']['epochs']} with --pretrained" in text

