"""Issue 10, items 7-8: `search`/`evaluate` with a device that does not exist is one line, and `search` refuses
features whose distances are not finite instead of writing inf/nan (as `evaluate` does)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opreid_bench.cli import main
from opreid_bench.errors import EvaluationError
from opreid_bench.evaluation import FeatureSet, write_feature_file
from opreid_bench.evaluation.retrieval import resolve_device, topk_from_distmat, topk_search


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _features(path: Path, scale: float = 1.0) -> Path:
    rng = np.random.default_rng(0)
    q = FeatureSet((scale * rng.standard_normal((4, 3))).astype(np.float32), np.arange(4), np.zeros(4, int))
    g = FeatureSet((scale * rng.standard_normal((8, 3))).astype(np.float32), np.arange(8) % 4, np.ones(8, int))
    write_feature_file(path, q, g)
    return path


def test_unknown_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _features(tmp_path / "f.h5")
    code, _, err = _cli(["search", "--features", str(f), "--device", "bogus", "--out", str(tmp_path / "r.csv")],
                        capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: unknown torch device 'bogus'")
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _features(tmp_path / "f.h5")
    code, _, err = _cli(["search", "--features", str(f), "--out", str(tmp_path / "r.csv"), "--device", "cuda"], capsys)
    assert code == 2
    assert err.strip().splitlines() == ["error: device 'cuda' requested but CUDA is not available here; use "
                                        "--device cpu"]
    with pytest.raises(EvaluationError, match="CUDA is not available"):
        resolve_device("cuda:0")


@pytest.mark.parametrize("extra", [[], ["--rerank", "--k1", "3", "--k2", "2"], ["--metric", "cosine"]])
def test_search_refuses_distances_that_overflow(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                extra: list[str]) -> None:
    f = _features(tmp_path / "big.h5", scale=1e30)  # finite features, but their squared distances overflow float32
    out = tmp_path / "r.csv"
    code, _, err = _cli(["search", "--features", str(f), "--out", str(out), *extra], capsys)
    if extra == ["--metric", "cosine"]:  # cosine normalises first: finite, so it is written
        assert code == 0 and out.exists()
        return
    assert code == 2
    line = err.strip().splitlines()[-1]
    # the features are checked before any distance is taken, as evaluate checks them (re-ranking too)
    assert line.startswith(f"error: {f}: query features are too large for float32 distances")
    assert not out.exists()


def test_topk_functions_check_every_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from opreid_bench.evaluation import retrieval

    with pytest.raises(EvaluationError, match="query 1 and gallery 2 is nan"):
        d = np.zeros((3, 4), np.float32)
        d[1, 2] = np.nan
        topk_from_distmat(d, 2)
    big = np.full((2, 3), 1e30, np.float32)
    with pytest.raises(EvaluationError, match="too large for float32 distances"):  # refused before any block
        topk_search(big, -big, 1, query_chunk=1, gallery_chunk=1)

    def overflowing(a: torch.Tensor, b: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
        return torch.full((a.shape[0], b.shape[0]), float("inf"))

    monkeypatch.setattr(retrieval, "pairwise_distances", overflowing)  # a block that overflows anyway
    with pytest.raises(EvaluationError, match="NaN/inf"):
        topk_search(np.ones((2, 3), np.float32), np.ones((3, 3), np.float32), 1, query_chunk=1, gallery_chunk=1)


@pytest.mark.parametrize("device", ["mps", "meta", "xpu"])
def test_devices_other_than_cpu_and_cuda_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      device: str) -> None:
    f = _features(tmp_path / "f.h5")
    for command in (["search", "--features", str(f), "--out", str(tmp_path / "r.csv")],
                    ["evaluate", "--features", str(f)]):
        code, _, err = _cli([*command, "--device", device], capsys)
        assert code == 2 and err.strip().splitlines() == [
            f"error: device '{device}' is not supported for distances; use --device cpu or cuda"]


def test_a_negative_bootstrap_seed_is_refused_before_any_work(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from opreid_bench.evaluation.bootstrap import paired_difference_ci, seed_mean_ci

    f = _features(tmp_path / "f.h5")
    code, _, err = _cli(["evaluate", "--features", str(f), "--bootstrap", "10", "--seed", "-1"], capsys)
    assert code == 2 and "Traceback" not in err and "--seed" in err.strip().splitlines()[-1]
    with pytest.raises(EvaluationError, match="at least one resample"):
        seed_mean_ci(np.ones((2, 5)), 0)
    with pytest.raises(EvaluationError, match="seed must be 0 or more"):
        paired_difference_ci(np.ones((2, 5)), np.zeros((2, 5)), 10, seed=-3)
