"""Smoke test of benchmarks/bench_models.py at a tiny input size: JSON layout, inference-only parameter counts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_models.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_models", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module



@pytest.mark.slow
def test_bench_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load_bench()
    argv = ["--json", "--height", "64", "--width", "32", "--batch", "4", "--num-instances", "2", "--infer-batch", "2",
            "--iters", "1", "--warmup", "0", "--backbones", "mobilenetv2"]
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    assert set(out["methods"]) == {"bot", "baseline", "ours"}
    for method in out["methods"].values():
        row = method["mobilenetv2"]
        assert set(row) == {"params_inference", "infer_img_s", "train_img_s"}
        assert row["infer_img_s"] > 0 and row["train_img_s"] > 0
    assert out["inference_ratio_ours_vs_baseline"] is None  # defined on ResNet-50 only


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "mobilenetv2"])
def test_inference_params_exclude_training_only_parts(backbone: str) -> None:
    bench = _load_bench()
    subj = {
        m: bench.build_subject(m, backbone, height=64, width=32, batch=4, infer_batch=2, num_instances=2,
                               num_classes=10, seed=0)
        for m in ("bot", "baseline", "ours")
    }
    inf = {m: s.params_inference for m, s in subj.items()}
    total = {m: s.params_total for m, s in subj.items()}
    # classifiers (and ours' RP branch) are trained but do no work at inference
    assert all(inf[m] < total[m] for m in subj)
    assert total["ours"] - inf["ours"] > total["baseline"] - inf["baseline"]
    # ours = baseline with DNL in place of the non-local blocks: the same size at inference within 5 %
    assert abs(inf["ours"] - inf["baseline"]) < 0.05 * inf["baseline"]
    assert inf["bot"] < inf["baseline"]  # the non-local blocks
