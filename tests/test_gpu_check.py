"""benchmarks/gpu_check.py: the whole GPU check runs on a CPU with --tiny, and its recipe estimate is the formula."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _module():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu_check


def test_the_tiny_check_runs_end_to_end_on_a_cpu_with_the_keys_of_a_gpu_run(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--json", "--out",
                           str(tmp_path / "work")], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert set(out) == {"device", "torch", "cpu_cores", "tiny", "pool_images", "train", "data", "estimates", "parity",
                        "ddp", "minutes"}
    assert set(out["train"]) == {"ours", "bot", "baseline"}
    for method, row in out["train"].items():
        assert set(row) == {"steps", "batch_images", "images_per_s", "steps_per_s", "model_only_images_per_s",
                            "peak_gpu_memory_gb", "loss_first", "loss_last", "loss_fell", "amp", "cbe"}
        assert row["images_per_s"] > 0 and row["cbe"] == (method == "ours") and row["amp"] is False
    # ours feeds the model CBE's doubled batch: 2 x 4 ids x 2 images
    assert out["train"]["ours"]["batch_images"] == 2 * out["train"]["bot"]["batch_images"] == 16
    assert set(out["data"]["images_per_s_by_workers"]) == {"0", "2"} and out["data"]["bound"] in ("model",
                                                                                                  "data pipeline")
    assert set(out["estimates"]) == {"paper_table3", "paper_table4", "paper_table5"}
    assert all(v["hours"] > 0 for v in out["estimates"].values())
    assert out["parity"]["device_vs_cpu_max_abs"] == 0.0 and out["parity"]["onnx_within_1e-3"]
    assert out["ddp"] == {"exit_code": 0, "seconds": out["ddp"]["seconds"], "backend": "gloo", "stderr_tail": ""}


def test_recipe_hours_are_epochs_times_steps_over_the_bounding_rate() -> None:
    gpu_check = _module()
    from opreid_bench.engine.recipes import load_recipe

    # paper_table4: 16 x 4 batches, 120 epochs; a step rate of 2/s for every method, a loader far faster
    train = {m: {"steps_per_s": 2.0} for m in ("ours", "bot", "baseline")}
    got = gpu_check.estimates(train, best_data_rate=1e9)["paper_table4"]
    recipe = load_recipe("paper_table4")
    sizes = {"market1501": 12_936, "dukemtmc": 16_522, "opreid": 27_228, "occluded_duke": 15_618}
    want = sum(sizes[r.dataset] / 64 * 120 / 2.0 / 3600 for r in recipe.train)
    assert got["hours"] == pytest.approx(round(want, 2)) and got["runs"] == len(recipe.train)
    # a loader slower than the model bounds the epoch: 64 images/s is one step per second, half the model's rate
    slow = gpu_check.estimates(train, best_data_rate=64.0)["paper_table4"]
    assert slow["hours"] == pytest.approx(round(2 * want, 2), rel=1e-3)
