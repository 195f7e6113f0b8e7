"""benchmarks/reproduce_cpu.py end to end on generated trees: results.json keys, seeds, CIs, ME pair, content keys.

The trees follow CUHK03-labeled's and Partial-REID's layouts with tiny coloured JPEGs (one colour per identity plus
noise), and the "ImageNet" checkpoint is a random MobileNetV2 saved with torchvision's names, so the test needs no
shared data and runs in seconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("reproduce_cpu_under_test", REPO / "benchmarks" / "reproduce_cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jpeg(path: Path, pid: int, rng: np.random.Generator) -> None:
    base = np.array([(pid * 53) % 256, (pid * 97) % 256, (pid * 31) % 256], dtype=np.float64)
    img = np.clip(base + rng.normal(0, 25, size=(24, 12, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=90)


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for p in range(6):
        for k in (0, 1, 5, 6):
            _jpeg(root / "cuhk03_labeled" / "train" / f"{p:04d}_{k:02d}.jpg", p, rng)
    for p in range(4):
        for k in (0, 5):
            _jpeg(root / "cuhk03_labeled" / "val" / f"{p:04d}_{k:02d}.jpg", 100 + p, rng)
    for folder in ("occluded_body_images", "partial_body_images", "whole_body_images"):
        for p in range(1, 4):
            for i in (1, 2):
                _jpeg(root / "Partial-REID_Dataset" / folder / f"{p:03d}_{i:03d}.jpg", 200 + p, rng)
    from opreid_bench.modeling.backbones import build_backbone

    weights = root / "mobilenet_v2.pth"
    torch.manual_seed(0)
    state = build_backbone("mobilenetv2", last_stride=2).state_dict()
    state["classifier.1.weight"] = torch.zeros(1000, 1280)
    state["classifier.1.bias"] = torch.zeros(1000)
    torch.save(state, weights)
    return root, weights


def _run(module, out: Path, trees: tuple[Path, Path], *extra: str) -> dict:
    root, weights = trees
    args = ["--out", str(out), "--data", str(root), "--weights", str(weights), "--height", "32", "--width", "16",
            "--train-ids", "6", "--max-iters", "1", "--seeds", "0,1", "--methods", "bot,ours", "--ablations", "none",
            "--set", "data.batch_p=3", "--set", "data.batch_k=2", "--json", *extra]
    result = CliRunner().invoke(module.main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_results_keys_seeds_cis_and_content_keyed_reuse(tmp_path: Path, trees: tuple[Path, Path]) -> None:
    module = _module()
    res = _run(module, tmp_path / "cpu", trees, "--epochs", "1")
    tests = [k for k, _ in module.TESTS]
    for method in ("bot", "ours", "ours_no_me", "imagenet"):
        entry = res[method]
        for key in tests:
            assert set(entry[key]) >= {"rank1", "mAP", "mINP"}  # the mean over seeds, today's keys
        if method == "imagenet":
            continue
        assert sorted(entry["seeds"]) == ["0", "1"]
        for row in entry["seeds"].values():
            assert Path(row["run_dir"], "model.pt").is_file()
            assert row["complete"] and row["epochs"] == 1
        for key in tests:
            lo, hi = entry["ci95"][key]["mAP"]
            assert 0.0 <= lo <= entry[key]["mAP"] <= hi <= 1.0
            seed_maps = [entry["seeds"][s][key]["mAP"] for s in ("0", "1")]
            assert entry[key]["mAP"] == pytest.approx(np.mean(seed_maps))
            assert entry["std"][key]["mAP"] == pytest.approx(np.std(seed_maps, ddof=1), abs=1e-6)
    # ours_no_me is ours' own checkpoint with ME off: same run directories
    assert res["ours_no_me"]["seeds"]["0"]["run_dir"] == res["ours"]["seeds"]["0"]["run_dir"]
    comp = res["comparisons"]
    for key in tests:
        c = comp["ours_vs_strongest_baseline"][key]
        assert c["baseline"] == "bot"
        lo, hi = c["mAP"]["ci95"]
        assert lo <= c["mAP"]["diff"] <= hi
        assert c["mAP"]["diff"] == pytest.approx(res["ours"][key]["mAP"] - res["bot"][key]["mAP"], abs=1e-5)
        assert "mAP" in comp["me_effect"][key]
    assert res["meta"]["units"] == "fraction"
    from opreid_bench.leaderboard.rows import load_runs

    rows = {(r.method, r.dataset): r for r in load_runs([tmp_path / "cpu"])}
    assert rows[("ours", "partial_reid")].mAP == pytest.approx(100 * res["ours"]["partial_reid"]["mAP"], abs=0.006)
    assert {m for m, _ in rows} == {"bot", "ours", "ours_no_me", "imagenet"}  # no row from "comparisons"/"meta"
    runs = sorted(p.name for p in (tmp_path / "cpu" / "runs").iterdir())
    assert len(runs) == 4
    # the same call reuses every run; another --epochs never reuses a stale one
    again = _run(module, tmp_path / "cpu", trees, "--epochs", "1")
    assert again["ours"]["cuhk03_val"] == res["ours"]["cuhk03_val"]
    assert sorted(p.name for p in (tmp_path / "cpu" / "runs").iterdir()) == runs
    more = _run(module, tmp_path / "cpu", trees, "--epochs", "2", "--seeds", "0", "--methods", "ours")
    assert more["ours"]["seeds"]["0"]["epochs"] == 2
    assert len(list((tmp_path / "cpu" / "runs").iterdir())) == 5
    # --report-only trains nothing: it reports results.json as it stands (here: after the last call)
    report = CliRunner().invoke(module.main, ["--out", str(tmp_path / "cpu"), "--report-only", "--json",
                                              "--plots", str(tmp_path / "plots")], catch_exceptions=False)
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout.strip().splitlines()[-1]) == more
    assert (tmp_path / "plots" / "reproduce_cpu.png").is_file()
    assert len(list((tmp_path / "cpu" / "runs").iterdir())) == 5
    missing = CliRunner().invoke(module.main, ["--out", str(tmp_path / "nothing"), "--report-only"])
    assert missing.exit_code != 0 and "results.json" in missing.output


def test_paired_bootstrap_and_seed_mean_ci() -> None:
    from opreid_bench.evaluation.bootstrap import paired_difference_ci, seed_mean_ci

    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0, 1, size=300)  # shared per-query difficulty: what pairing cancels
    a = np.clip(difficulty[None] + 0.05 + rng.normal(0, 0.02, size=(3, 300)), 0, 1)
    b = np.clip(difficulty[None] + rng.normal(0, 0.02, size=(2, 300)), 0, 1)
    paired = paired_difference_ci(a, b, num_resamples=1000, seed=1)
    assert paired["diff"] == pytest.approx(a.mean() - b.mean())
    lo, hi = paired["ci95"]
    assert 0.03 < lo < paired["diff"] < hi < 0.07 and paired["p_not_positive"] == 0.0
    # unpaired intervals overlap heavily; the paired one excludes 0
    ci_a, ci_b = seed_mean_ci(a, 1000, seed=1), seed_mean_ci(b, 1000, seed=1)
    assert ci_a[0] < ci_b[1]
    assert paired_difference_ci(a, b, num_resamples=1000, seed=1) == paired  # seeded
    with pytest.raises(Exception, match="same queries"):
        paired_difference_ci(a, b[:, :10])


def test_a_run_stopped_by_the_time_cap_is_reported_incomplete_and_resumed(tmp_path: Path,
                                                                         trees: tuple[Path, Path]) -> None:
    module = _module()
    capped = _run(module, tmp_path / "cpu", trees, "--epochs", "2", "--seeds", "0", "--methods", "bot",
                  "--minutes-per-run", "0.00001")
    row = capped["bot"]["seeds"]["0"]
    assert row["complete"] is False and row["epochs"] == 1 and not capped["bot"]["complete"]
    assert "cuhk03_val" not in capped["bot"]  # no mean over unfinished runs
    done = _run(module, tmp_path / "cpu", trees, "--epochs", "2", "--seeds", "0", "--methods", "bot")
    assert done["bot"]["seeds"]["0"]["complete"] and done["bot"]["seeds"]["0"]["epochs"] == 2
    assert done["bot"]["seeds"]["0"]["run_dir"] == row["run_dir"]  # resumed, not restarted elsewhere
