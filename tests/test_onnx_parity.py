"""Issue 12: `opreid-bench export` + onnxruntime give PyTorch's features within 1e-4 (max abs, L2-normalised) for
every method and both backbones, through the whole path: checkpoint -> export -> crops decoded and normalised by the
ONNX runner from the model's metadata -> onnxruntime, against ``extract_features`` on the same crops.

The models are not trained; their BatchNorm running statistics are the averages over two train-mode forwards on
seeded random batches (with torch's initial statistics an untrained MobileNetV2's feature maps are ~1e-10 and every
feature would be equal, making the comparison empty); the same forwards set ME's mu, so the exported graph must
carry a non-trivial ME (checked for `ours`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx_helpers import cuhk03_tree  # noqa: E402

from opreid_bench.data.datasets import load_dataset  # noqa: E402
from opreid_bench.engine.checkpoint import load_model_from_checkpoint, save_checkpoint  # noqa: E402
from opreid_bench.engine.config import load_method_config  # noqa: E402
from opreid_bench.engine.extract import extract_features  # noqa: E402
from opreid_bench.engine.onnx_export import export_checkpoint  # noqa: E402
from opreid_bench.engine.onnx_runner import OnnxFeatureExtractor  # noqa: E402
from opreid_bench.modeling import build_model  # noqa: E402


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = cuhk03_tree(tmp_path_factory.mktemp("onnx_parity") / "data", train_ids=1, val_ids=4)
    splits = load_dataset("cuhk03_labeled", root)
    return [*splits.query, *splits.gallery]


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _checkpoint(method: str, backbone: str, path: Path) -> Path:
    cfg = load_method_config(method, [f"model.backbone={backbone}", "model.pretrained=null", "data.height=32",
                                      "data.width=16", "data.workers=0"])
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=4)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.momentum = None  # running statistics = the average over the forwards below, as after training
                m.reset_running_stats()
        model.train()
        for _ in range(2):  # BN running statistics and ME's mu (Eq. 6) from train-mode forwards
            model(torch.randn(6, 3, 32, 16, generator=gen))
    return save_checkpoint(path, model=model, cfg=cfg, num_classes=4, dataset="tiny", epoch=1, with_rng=False)


@pytest.mark.parametrize("backbone", ["mobilenetv2", pytest.param("resnet50", marks=pytest.mark.slow)])
@pytest.mark.parametrize("method", ["bot", "baseline", "ours"])
def test_onnxruntime_features_equal_pytorch(method: str, backbone: str, crops: list, tmp_path: Path) -> None:
    weights = _checkpoint(method, backbone, tmp_path / "model.pt")
    info = export_checkpoint(weights, tmp_path / "model.onnx")
    model, cfg, _ = load_model_from_checkpoint(weights)
    reference = extract_features(model, crops, cfg, progress=False)
    got = OnnxFeatureExtractor(tmp_path / "model.onnx", batch_size=5)(crops, progress=False)
    assert got.shape == reference.shape == (len(crops), model.feat_dim) == (len(crops), info["dim"])
    assert np.abs(_l2(got) - _l2(reference)).max() <= 1e-4
    spread = 1 - _l2(reference) @ _l2(reference).T
    assert spread.max() > 1e-3  # distinct crops give distinct features: the comparison is not between constants
    proto = onnx.load(str(tmp_path / "model.onnx"), load_external_data=False)
    names = [i.name for i in proto.graph.initializer]
    assert not [n for n in names if n.startswith(("classifier", "rp_branch"))]
    assert info["feature"] == {"bot": "bnneck", "baseline": "bnneck", "ours": "pooled+ME"}[method]
    if method == "ours":  # ME folded in: the graph's features are not the pooled feature without mu removed
        assert float(model.me.mu.norm()) > 0.1
        model.me_at_inference = False
        no_me = extract_features(model, crops, cfg, progress=False)
        assert np.linalg.norm(_l2(got) - _l2(no_me), axis=1).min() > 0.05
