"""A checkpoint that cannot be used is one line naming it and what is wrong: a truncated file, a text file, a pickled
object, and a model whose weights hold NaN (its features are NaN; the error names the checkpoint and the image, not
the features)."""

from __future__ import annotations

import datetime
import zipfile
from pathlib import Path

import pytest
import torch
from onnx_helpers import cuhk03_tree

from opreid_bench.cli import main
from opreid_bench.engine.checkpoint import save_checkpoint
from opreid_bench.engine.config import load_method_config
from opreid_bench.modeling import build_model


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code or 0), capsys.readouterr().err


def _checkpoint(path: Path, nan: bool = False) -> Path:
    cfg = load_method_config("bot", ["model.backbone=mobilenetv2", "model.pretrained=null", "data.height=32",
                                     "data.width=16", "data.workers=0"])
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=4)
    if nan:
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
    return save_checkpoint(path, model=model, cfg=cfg, num_classes=4, dataset="tiny", epoch=1, with_rng=False)


@pytest.mark.parametrize(("name", "says"), [
    ("truncated", "truncated or damaged"),
    ("text", "not a PyTorch file"),
    ("pickled", "holds Python objects besides tensors"),
])
def test_an_unreadable_checkpoint_is_one_whole_line(tmp_path: Path, name: str, says: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"{name}.pt"
    if name == "truncated":
        good = _checkpoint(tmp_path / "good.pt").read_bytes()
        path.write_bytes(good[: len(good) // 2])
        assert not zipfile.is_zipfile(path)
    elif name == "text":
        path.write_text("epoch 3, loss 0.1\n")
    else:
        torch.save({"model": {"weight": torch.ones(2)}, "saved": datetime.date(2026, 1, 1)}, path)
    for command in (["export", "--weights", str(path), "--out", str(tmp_path / "m.onnx")],
                    ["evaluate", "--zoo", "torchreid:osnet_x0_25", "--weights", str(path), "--dataset", "market1501",
                     "--root", str(tmp_path)]):
        code, err = _cli(command, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err  # no torch warning before it
        assert str(path) in lines[0] and says in lines[0] and lines[0].endswith(")"), lines[0]
        assert "weights_only" not in lines[0]  # never the advice to unpickle untrusted code


def test_a_checkpoint_with_nan_weights_is_named_with_the_image(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    weights = _checkpoint(tmp_path / "nan.pt", nan=True)
    root = cuhk03_tree(tmp_path / "data", train_ids=1, val_ids=2)
    code, err = _cli(["evaluate", "--weights", str(weights), "--dataset", "cuhk03_labeled", "--root", str(root)],
                     capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and str(weights) in line and "NaN/inf features" in line and "0000_00" in line, err
    code, err = _cli(["export", "--weights", str(weights), "--out", str(tmp_path / "nan.onnx")], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and str(weights) in line and "NaN/inf features" in line and "differ" not in line, err
    assert not (tmp_path / "nan.onnx").exists()
