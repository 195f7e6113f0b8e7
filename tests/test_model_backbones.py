"""Backbones: torchvision parameter names/shapes, strict load of the shared MobileNetV2 checkpoint, last stride."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from opreid_bench.errors import CheckpointError
from opreid_bench.modeling.backbones import load_pretrained, mobilenetv2, resnet50
from opreid_bench.modeling.layers import NonLocalBlock

# Written down from torchvision.models.resnet50 (v1.5): a few names with their shapes ...
RESNET50_SPOT = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.weight": (64,),
    "bn1.running_var": (64,),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.running_mean": (256,),
    "layer1.2.bn3.bias": (256,),
    "layer2.0.conv1.weight": (128, 256, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.0.downsample.0.weight": (512, 256, 1, 1),
    "layer2.3.conv3.weight": (512, 128, 1, 1),
    "layer3.0.downsample.0.weight": (1024, 512, 1, 1),
    "layer3.5.bn2.num_batches_tracked": (),
    "layer4.0.conv1.weight": (512, 1024, 1, 1),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
    "layer4.2.bn3.weight": (2048,),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}
# ... and the full architecture: blocks per stage, widths, expansion 4, downsample in each stage's first block.
RESNET50_STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))
RESNET50_NUM_PARAMETERS = 25_557_032  # torchvision's published count
MOBILENETV2_NUM_PARAMETERS = 3_504_872


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet50_keys() -> dict[str, tuple[int, ...]]:
    """Plain reference: torchvision resnet50 state_dict names and shapes, enumerated by hand."""
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for stage, (blocks, planes) in enumerate(RESNET50_STAGES, start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            keys[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            keys.update(_bn(f"{p}.bn1", planes))
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            keys.update(_bn(f"{p}.bn2", planes))
            keys[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            keys.update(_bn(f"{p}.bn3", planes * 4))
            if b == 0:
                keys[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                keys.update(_bn(f"{p}.downsample.1", planes * 4))
            inplanes = planes * 4
    keys["fc.weight"] = (1000, 2048)
    keys["fc.bias"] = (1000,)
    return keys


def test_resnet50_names_and_shapes_match_torchvision() -> None:
    model = resnet50(last_stride=1, include_top=True)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in RESNET50_SPOT.items():
        assert got[key] == shape, key
    assert got == torchvision_resnet50_keys()
    assert len(got) == 320
    assert sum(p.numel() for p in model.parameters()) == RESNET50_NUM_PARAMETERS


def test_resnet50_without_top_has_no_fc_and_attention_keys_are_separate() -> None:
    model = resnet50(include_top=False)
    keys = set(model.state_dict())
    assert not any(k.startswith("fc.") for k in keys)
    model.add_attention(NonLocalBlock)
    assert sorted(model.attention.keys()) == ["layer2_2", "layer2_3", "layer3_3", "layer3_4", "layer3_5"]
    new = set(model.state_dict()) - keys
    assert new and all(k.startswith("attention.") for k in new)


def test_resnet50_last_stride_and_forward_shape() -> None:
    torch.manual_seed(0)
    model = resnet50(last_stride=1).eval()
    assert model.layer4[0].conv2.stride == (1, 1) and model.layer4[0].downsample[0].stride == (1, 1)
    assert resnet50(last_stride=2).layer4[0].conv2.stride == (2, 2)
    with torch.no_grad():
        fmap = model(torch.randn(1, 3, 64, 32))
    assert fmap.shape == (1, 2048, 4, 2)  # stride 16 with last stride 1


def test_mobilenetv2_loads_shared_checkpoint_strictly(mobilenet_weights: Path) -> None:
    state = torch.load(mobilenet_weights, map_location="cpu", weights_only=True)
    for last_stride in (1, 2):
        model = mobilenetv2(last_stride=last_stride, include_top=True)
        result = model.load_state_dict(state, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in model.parameters()) == MOBILENETV2_NUM_PARAMETERS
    # ImageNet-trained weights give a confident, non-degenerate prediction on a smooth image.
    model.eval()
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()

    backbone = mobilenetv2(last_stride=1)
    backbone.add_attention(NonLocalBlock)
    report = load_pretrained(backbone, mobilenet_weights)
    assert report.ignored == ["classifier.1.weight", "classifier.1.bias"]
    assert report.kept_init and all(k.startswith("attention.") for k in report.kept_init)
    assert torch.equal(backbone.state_dict()["features.14.conv.1.0.weight"], state["features.14.conv.1.0.weight"])


def test_mobilenetv2_names_and_last_stride() -> None:
    model = mobilenetv2(last_stride=1, include_top=True)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["features.0.0.weight"] == (32, 3, 3, 3)
    assert shapes["features.1.conv.0.0.weight"] == (32, 1, 3, 3)
    assert shapes["features.1.conv.1.weight"] == (16, 32, 1, 1)
    assert shapes["features.14.conv.1.0.weight"] == (576, 1, 3, 3)
    assert shapes["features.18.0.weight"] == (1280, 320, 1, 1)
    assert shapes["classifier.1.weight"] == (1000, 1280)
    assert model.features[14].conv[1][0].stride == (1, 1)
    assert mobilenetv2(last_stride=2).features[14].conv[1][0].stride == (2, 2)
    with torch.no_grad():
        assert mobilenetv2(last_stride=1).eval()(torch.randn(1, 3, 64, 32)).shape == (1, 1280, 4, 2)
        assert mobilenetv2(last_stride=2).eval()(torch.randn(1, 3, 64, 32)).shape == (1, 1280, 2, 1)


def test_load_pretrained_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained(mobilenetv2(), tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_pretrained(mobilenetv2(), junk)
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.ones(64)}, other)  # ResNet names
    with pytest.raises(CheckpointError, match="another architecture"):
        load_pretrained(mobilenetv2(), other)
    partial = tmp_path / "partial.pth"
    state = mobilenetv2().state_dict()
    state.pop("features.3.conv.2.weight")
    torch.save({"state_dict": state}, partial)
    with pytest.raises(CheckpointError, match="lacks 1"):
        load_pretrained(mobilenetv2(), partial)
    wrong = tmp_path / "wrong.pth"
    state = mobilenetv2().state_dict()
    state["features.18.0.weight"] = torch.zeros(10, 320, 1, 1)
    torch.save(state, wrong)
    with pytest.raises(CheckpointError, match="features.18.0.weight"):
        load_pretrained(mobilenetv2(), wrong)
