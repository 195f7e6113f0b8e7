"""`--zoo torchreid:ARCH`: torchreid checkpoints in every published format load into our rebuilt architectures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from opreid_bench.errors import OpreidError
from opreid_bench.modeling.zoo import ZOO, load_zoo_model, read_state_dict

ARCHS = ["torchreid:osnet_x1_0", "torchreid:osnet_x0_75", "torchreid:osnet_x0_5", "torchreid:osnet_x0_25",
         "torchreid:osnet_ibn_x1_0", "torchreid:osnet_ain_x1_0", "torchreid:osnet_ain_x0_75",
         "torchreid:osnet_ain_x0_5", "torchreid:osnet_ain_x0_25", "torchreid:resnet50", "torchreid:resnet50_fc512"]


def randomised(spec: str, seed: int = 0) -> torch.nn.Module:
    """The architecture with random weights and random norm statistics (every tensor of the checkpoint matters)."""
    model = ZOO.get(spec)()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var")
                        else torch.randn(t.shape, generator=g) * 0.1)
    return model.eval()


def test_every_architecture_is_registered():
    assert sorted(ARCHS) == ZOO.names()


@pytest.mark.parametrize("spec", ARCHS)
def test_a_checkpoint_in_torchreids_format_gives_the_features_of_the_model_it_came_from(spec, tmp_path):
    model = randomised(spec)
    x = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x)
    state = model.state_dict()
    classifier = {"classifier.weight": torch.randn(751, model.feature_dim), "classifier.bias": torch.zeros(751)}
    variants = {
        # as torchreid's Engine.save_model writes it: rank1 is cmc[0], a numpy.float32
        "wrapped": {"state_dict": {**state, **classifier}, "epoch": 250, "rank1": np.float32(0.94),
                    "optimizer": {"state": {}, "param_groups": [{"lr": 0.0003, "params": [0, 1]}]}},
        "bare": dict(state),
        "module": {"state_dict": {f"module.{k}": v for k, v in {**state, **classifier}.items()}},
        "small_classifier": {**state, "classifier.weight": torch.randn(3, model.feature_dim),
                             "classifier.bias": torch.zeros(3)},
    }
    for name, obj in variants.items():
        path = tmp_path / f"{name}.pth.tar"
        torch.save(obj, path)
        loaded, prep = load_zoo_model(spec, path)
        with torch.no_grad():
            assert torch.equal(loaded(x), want), name
    assert (prep.height, prep.width) == (256, 128) and prep.mean == (0.485, 0.456, 0.406)
    assert want.shape == (2, 2048 if spec == "torchreid:resnet50" else 512)


def test_refusals_are_one_line_naming_the_file(tmp_path):
    osnet = randomised("torchreid:osnet_x0_25")
    path = tmp_path / "x025.pth"
    torch.save({"state_dict": osnet.state_dict()}, path)
    with pytest.raises(OpreidError) as exc:
        load_zoo_model("torchreid:osnet_x1_0", path)  # the right format, the wrong width
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and "of another shape" in msg
    assert "conv1.bn.running_mean (16,), the model's (64,)" in msg  # the shapes, not only the key
    with pytest.raises(OpreidError, match=r"\d+ key\(s\) missing \(e\.g\. .*\); \d+ key\(s\) unexpected"):
        load_zoo_model("torchreid:resnet50", path)
    with pytest.raises(OpreidError, match="unknown architecture"):
        load_zoo_model("torchreid:osnet_x9", path)
    with pytest.raises(OpreidError, match="use torchreid:ARCH"):
        load_zoo_model("mmreid:bot.yml", path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(OpreidError, match="junk.pth: not a readable PyTorch checkpoint"):
        read_state_dict(tmp_path / "junk.pth")
    torch.save({"epoch": 3}, tmp_path / "nostate.pth")
    with pytest.raises(OpreidError, match=r"nostate.pth: no state dict found .*; its top-level keys: epoch\)"):
        read_state_dict(tmp_path / "nostate.pth")
    torch.save({"model": osnet.state_dict(), "iteration": 9}, tmp_path / "fast.pth")
    with pytest.raises(OpreidError, match="it looks like a fast-reid checkpoint: use --zoo fastreid:CONFIG.yml"):
        read_state_dict(tmp_path / "fast.pth")
    from opreid_bench.engine.checkpoint import CHECKPOINT_FORMAT
    from opreid_bench.modeling.zoo import OWN_CHECKPOINT_FORMAT

    assert OWN_CHECKPOINT_FORMAT == CHECKPOINT_FORMAT
    torch.save({"format": CHECKPOINT_FORMAT, "model": osnet.state_dict(), "config": {}}, tmp_path / "own.pt")
    with pytest.raises(OpreidError, match="a checkpoint of `opreid-bench train`: give it as --weights without --zoo"):
        read_state_dict(tmp_path / "own.pt")
    with pytest.raises(OpreidError, match="missing.pth: zoo checkpoint not found"):
        read_state_dict(tmp_path / "missing.pth")


@pytest.mark.shared_data
def test_evaluate_and_extract_take_a_zoo_checkpoint(partial_reid_root: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]):
    from opreid_bench.cli import main
    from opreid_bench.evaluation.features import read_feature_file

    ckpt = tmp_path / "osnet_x0_25_market.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in randomised("torchreid:osnet_x0_25").state_dict().items()}},
               ckpt)
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--zoo", "torchreid:osnet_x0_25", "--weights", str(ckpt), "--dataset", "partial_reid",
              "--root", str(partial_reid_root), "--json"])
    assert exc.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["mAP"] <= 1.0 and 0.0 <= report["rank1"] <= 1.0
    with pytest.raises(SystemExit) as exc:
        main(["extract", "--zoo", "torchreid:osnet_x0_25", "--weights", str(ckpt), "--dataset", "partial_reid",
              "--root", str(partial_reid_root), "--out", str(tmp_path / "f.h5"), "--json"])
    assert exc.value.code == 0
    query, gallery, attrs = read_feature_file(tmp_path / "f.h5")
    assert query.features.shape == (300, 512) and attrs["method"] == "torchreid:osnet_x0_25"
    assert attrs["metric"] == "euclidean" and (attrs["height"], attrs["width"]) == (256, 128)
    import hashlib

    assert attrs["weights_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    # a model trained at another size runs at that size
    with pytest.raises(SystemExit) as exc:
        main(["extract", "--zoo", "torchreid:osnet_x0_25", "--weights", str(ckpt), "--dataset", "partial_reid",
              "--root", str(partial_reid_root), "--out", str(tmp_path / "small.h5"), "--input-size", "128x64"])
    assert exc.value.code == 0
    small_q, _, small_attrs = read_feature_file(tmp_path / "small.h5")
    assert (small_attrs["height"], small_attrs["width"]) == (128, 64)
    assert not np.allclose(small_q.features, query.features)
    # visualize runs the zoo model at that size too: its pages are those of the features extracted at that size
    pages = {}
    for name, source in (("zoo", ["--zoo", "torchreid:osnet_x0_25", "--weights", str(ckpt), "--dataset",
                                  "partial_reid", "--root", str(partial_reid_root), "--input-size", "128x64"]),
                         ("features", ["--features", str(tmp_path / "small.h5")])):
        with pytest.raises(SystemExit) as exc:
            main(["visualize", *source, "--out", str(tmp_path / f"vis_{name}"), "--limit", "3", "--json"])
        assert exc.value.code == 0
        pages[name] = (tmp_path / f"vis_{name}" / "index.html").read_text()
    assert pages["zoo"] == pages["features"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["visualize", "--features", str(tmp_path / "small.h5"), "--input-size", "128x64",
              "--out", str(tmp_path / "vis_bad")])
    assert exc.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "error: --input-size goes with --zoo")
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--zoo", "torchreid:osnet_x0_25", "--weights", str(ckpt), "--dataset", "partial_reid",
              "--root", str(partial_reid_root), "--input-size", "128x64", "--mean", "0.5,0.5,0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err[-1] == (
        "error: --mean: a --zoo model uses its toolkit's test preprocessing; only --input-size changes with --zoo "
        "(for a model trained at another size)")
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--zoo", "torchreid:osnet_x1_0", "--weights", str(ckpt), "--dataset", "partial_reid",
              "--root", str(partial_reid_root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err[-1].startswith(f"error: {ckpt}: does not fit torchreid:osnet_x1_0")


@pytest.mark.parametrize("spec", ["torchreid:osnet_x0_25", "torchreid:osnet_ibn_x1_0", "torchreid:osnet_ain_x0_25",
                                  "torchreid:resnet50_fc512"])
def test_export_zoo_writes_onnx_with_the_preprocessing_in_its_metadata(spec, tmp_path):
    import numpy as np
    import onnxruntime as ort

    from opreid_bench.engine.onnx_export import export_zoo
    from opreid_bench.engine.onnx_runner import META_PREFIX

    model = randomised(spec)
    ckpt = tmp_path / "m.pth"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    info = export_zoo(spec, ckpt, tmp_path / "m.onnx")
    assert info["max_abs_diff"] <= 1e-4 and info["input_size"] == "256x128" and info["method"] == spec
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta[f"{META_PREFIX}input_size"] == "256x128" and meta[f"{META_PREFIX}channel_order"] == "RGB"
    assert meta[f"{META_PREFIX}metric"] == "euclidean" and meta[f"{META_PREFIX}method"] == spec
    x = torch.randn(3, 3, 256, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = model(x).numpy()
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))


def test_export_zoo_at_the_size_the_model_was_trained_at(tmp_path, capsys):
    import onnxruntime as ort

    from opreid_bench.cli import main
    from opreid_bench.engine.onnx_runner import META_PREFIX

    ckpt = tmp_path / "m.pth"
    torch.save({"state_dict": randomised("torchreid:osnet_x0_25").state_dict()}, ckpt)
    with pytest.raises(SystemExit) as exc:
        main(["export", "--zoo", "torchreid:osnet_x0_25", "--weights", str(ckpt), "--input-size", "384x128",
              "--out", str(tmp_path / "m.onnx"), "--json"])
    assert exc.value.code == 0 and json.loads(capsys.readouterr().out)["input_size"] == "384x128"
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_modelmeta().custom_metadata_map[f"{META_PREFIX}input_size"] == "384x128"
    assert sess.get_inputs()[0].shape[2:] == [384, 128]


@pytest.mark.shared_data
def test_visualize_takes_a_zoo_checkpoint(partial_reid_root: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]):
    from opreid_bench.cli import main

    ckpt = tmp_path / "osnet_x0_25.pth"
    torch.save(randomised("torchreid:osnet_x0_25").state_dict(), ckpt)
    with pytest.raises(SystemExit) as exc:
        main(["visualize", "--zoo", "torchreid:osnet_x0_25", "--weights", str(ckpt), "--dataset", "partial_reid",
              "--root", str(partial_reid_root), "--out", str(tmp_path / "vis"), "--limit", "3", "--json"])
    assert exc.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["queries_shown"] == 3 and Path(summary["html"]).is_file()
    with pytest.raises(SystemExit) as exc:
        main(["visualize", "--zoo", "torchreid:osnet_x0_25", "--weights", str(ckpt), "--dataset", "partial_reid",
              "--root", str(partial_reid_root), "--out", str(tmp_path / "vis2"), "--attention"])
    assert exc.value.code == 2 and "draws no --attention" in capsys.readouterr().err
