"""Issue 10, items 7-8: `train --resume` without a checkpoint says so (one line, exit 2) instead of silently
starting from scratch; a device that is not cpu/cuda is refused instead of silently using the CPU; a method config
that is not UTF-8 (found by the fuzzer) is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from opreid_bench.cli import main
from opreid_bench.engine.distributed import DistInfo, resolve_device
from opreid_bench.errors import OpreidError


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


def _tree(root: Path) -> Path:
    for split, ids in (("train", 4), ("val", 2)):
        folder = root / "cuhk03_labeled" / split
        folder.mkdir(parents=True)
        for pid in range(ids):
            for kk in (0, 1, 5, 6):
                Image.new("RGB", (16, 32), (pid * 40, kk * 20, 90)).save(folder / f"{pid:04d}_{kk:02d}.jpg")
    return root


def test_resume_without_a_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path / "data")
    run = tmp_path / "run"
    code, err = _cli(["train", "--method", "bot", "--dataset", "cuhk03_labeled", "--root", str(root), "--out", str(run),
                      "--resume", "--epochs", "1"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: {run / 'checkpoints' / 'last.pt'}: --resume, but there is no "
                                        "checkpoint to continue; run without --resume to start a new run"]
    assert not (run / "metrics.jsonl").exists()  # nothing started


@pytest.mark.parametrize("device", ["bogus", "mps", "cuda0", ""])
def test_train_device_must_be_cpu_or_cuda(device: str) -> None:
    with pytest.raises(OpreidError, match="use cpu, cuda or cuda:N"):
        resolve_device(device, DistInfo(rank=0, world_size=1, local_rank=0))
    assert str(resolve_device("cpu", DistInfo(rank=0, world_size=1, local_rank=0))) == "cpu"


def test_method_config_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "m.yaml"
    cfg.write_bytes(b"inherit: bot\nmodel: {backbone: \x9c}\n")
    code, err = _cli(["train", "--config", str(cfg), "--dataset", "cuhk03_labeled", "--root", str(tmp_path),
                      "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: {cfg}: not UTF-8 text (invalid start byte at byte 31)"]


def test_only_resume_may_leave_out_the_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path / "data")
    run = tmp_path / "run"
    code, err = _cli(["train", "--dataset", "cuhk03_labeled", "--root", str(root), "--out", str(run)], capsys)
    assert code == 2 and "train needs --method NAME or --config FILE (only --resume may leave both out)" in err
    code, err = _cli(["train", "--dataset", "cuhk03_labeled", "--root", str(root), "--out", str(run), "--resume"],
                     capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "last.pt: --resume without --method or --config takes the run's config from this checkpoint" in err
    code, err = _cli(["train", "--method", "bot", "--config", "x.yaml", "--dataset", "cuhk03_labeled", "--root",
                      str(root), "--out", str(run)], capsys)
    assert code == 2 and "not both" in err
    assert not run.exists()
