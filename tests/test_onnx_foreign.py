"""Issue 12: a model that is not an opreid-bench model (defined only here, exported with torch.onnx, no metadata)
evaluated through `--onnx` with explicit preprocessing options; and the one-line errors (exit 2) of `--onnx`: wrong
input rank, a dynamic axis it cannot fill, NaN outputs, missing normalisation, unknown output, not an ONNX file, and
an `export --out` over a file it did not write."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from onnx_helpers import cli_error, cli_ok, cuhk03_tree  # noqa: E402

from opreid_bench.data.datasets import load_dataset  # noqa: E402
from opreid_bench.data.torch_dataset import load_rgb  # noqa: E402
from opreid_bench.data.transforms import ReIDTransform  # noqa: E402
from opreid_bench.engine.extract import feature_set  # noqa: E402
from opreid_bench.evaluation.evaluator import evaluate_features  # noqa: E402
from opreid_bench.evaluation.features import read_feature_file  # noqa: E402

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
DATA = ["--dataset", "cuhk03_labeled"]


class ForeignNet(nn.Module):
    """A colour/texture descriptor: conv -> ReLU -> global mean and max -> (B, 16); BGR input, like cv2 models."""

    def __init__(self, nan: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.nan = nan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        f = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return f * float("nan") if self.nan else f


class FlatNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _export(model: nn.Module, path: Path, example: torch.Tensor, dynamic: dict[int, str]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False, input_names=["x"], output_names=["emb"],
                          dynamic_axes={"x": dynamic, "emb": {0: "n"}}, opset_version=17)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("onnx_foreign")
    root = cuhk03_tree(tmp / "data")
    x = torch.zeros(1, 3, 32, 16)
    return {
        "tmp": tmp, "root": root,
        # height and width dynamic: the size must come from --input-size
        "foreign": _export(ForeignNet(), tmp / "foreign.onnx", x, {0: "n", 2: "h", 3: "w"}),
        "nan": _export(ForeignNet(nan=True), tmp / "nan.onnx", x, {0: "n"}),
        "flat": _export(FlatNet(), tmp / "flat.onnx", torch.zeros(1, 12), {0: "n"}),
    }


def test_foreign_model_with_explicit_preprocessing(world: dict) -> None:
    root, tmp = world["root"], world["tmp"]
    opts = ["--input-size", "32x16", "--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD)),
            "--channel-order", "BGR"]
    report = cli_ok(["evaluate", "--onnx", world["foreign"], *DATA, "--root", root, *opts, "--metric", "cosine",
                     "--json"])
    # the same network in PyTorch on crops prepared by hand: resize, [0, 1], BGR, (x - mean) / std
    splits = load_dataset("cuhk03_labeled", root)
    net = ForeignNet().eval()

    def feats(records: list) -> np.ndarray:
        t = ReIDTransform(height=32, width=16, train=False, mean=MEAN[::-1], std=STD[::-1])
        batch = torch.stack([t(load_rgb(r.path)) for r in records])[:, [2, 1, 0]]
        with torch.no_grad():
            return net(batch).numpy()

    expected = evaluate_features(feature_set(splits.query, feats(splits.query)),
                                 feature_set(splits.gallery, feats(splits.gallery)), metric="cosine",
                                 junk="none").to_dict()
    for key in ("rank1", "rank5", "mAP", "mINP", "num_valid_queries"):
        assert report[key] == pytest.approx(expected[key], abs=1e-6), key
    assert 0 < report["mAP"] < 1
    cli_ok(["extract", "--onnx", world["foreign"], *DATA, "--root", root, *opts, "--out", tmp / "f.h5", "--json"])
    _, _, attrs = read_feature_file(tmp / "f.h5")
    assert (attrs["height"], attrs["width"], attrs["channel_order"], attrs["onnx_output"]) == (32, 16, "BGR", "emb")
    assert list(attrs["mean"]) == pytest.approx(MEAN) and list(attrs["std"]) == pytest.approx(STD)
    assert json.loads(attrs["preprocessing_from"]) == {"input_size": "options", "mean": "options", "std": "options",
                                                       "channel_order": "options", "output": "only output"}
    assert attrs["method"] == "foreign" and "metric" not in attrs
    # --metric records the distance, so evaluate --features scores the file as evaluate --onnx --metric did
    cli_ok(["extract", "--onnx", world["foreign"], *DATA, "--root", root, *opts, "--metric", "cosine", "--out",
            tmp / "fc.h5", "--json"])
    assert read_feature_file(tmp / "fc.h5")[2]["metric"] == "cosine"
    again = cli_ok(["evaluate", "--features", tmp / "fc.h5", "--json"])
    assert again["mAP"] == pytest.approx(report["mAP"], abs=1e-6) and again["metric"] == "cosine"


NORM = ["--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"]


@pytest.mark.parametrize("model, extra, expected", [
    ("flat", NORM, "input 'x' has rank 2"),
    ("foreign", NORM, "has a dynamic axis 2"),
    ("nan", NORM, "holds NaN/inf for image"),
    ("nan", [], "gives no normalisation; pass --mean and --std"),
    ("nan", [*NORM, "--output", "logits"], "no output named 'logits'"),
    ("nan", [*NORM, "--input-size", "64x32"], "is fixed at 32x16"),
])
def test_onnx_faults_are_one_line(world: dict, model: str, extra: list[str], expected: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    line = cli_error(["evaluate", "--onnx", world[model], *DATA, "--root", world["root"], *extra], capsys)
    assert line.startswith(f"error: {world[model]}: ") and expected in line, line


def test_not_an_onnx_file_and_export_over_a_foreign_file(world: dict, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = world["tmp"] / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    line = cli_error(["evaluate", "--onnx", bogus, *DATA, "--root", world["root"], *NORM], capsys)
    assert line.startswith(f"error: {bogus}: not a loadable ONNX model")
    line = cli_error(["extract", "--onnx", world["foreign"], *DATA, "--root", world["root"], "--out",
                      world["foreign"]], capsys)
    assert "would overwrite its own input" in line
    line = cli_error(["export", "--weights", world["tmp"] / "none.pt", "--out", bogus], capsys)
    assert "was not written by `opreid-bench export`" in line and bogus.read_bytes() == b"not a model"
