"""`--zoo fastreid:CONFIG.yml`: fast-reid configs (with `_BASE_` chains) and checkpoints in fast-reid's formats load
into the rebuilt Baseline; everything unsupported is refused in one line.

The configs are written here in fast-reid's own layout (configs/Base-*.yml, configs/Market1501/*.yml naming
`_BASE_: ../Base-....yml`), with small test sizes so that ResNet-50 runs fast on a CPU.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from opreid_bench.errors import OpreidError
from opreid_bench.modeling.zoo import load_zoo_model
from opreid_bench.modeling.zoo.fastreid_config import decode, load_yaml_with_base, plain, read_fastreid_config
from opreid_bench.modeling.zoo.fastreid_model import build_fastreid

BASE_BAGTRICKS = """\
MODEL:
  META_ARCHITECTURE: Baseline

  BACKBONE:
    NAME: build_resnet_backbone
    NORM: BN
    DEPTH: 50x
    LAST_STRIDE: 1
    FEAT_DIM: 2048
    WITH_IBN: False
    PRETRAIN: True

  HEADS:
    NAME: EmbeddingHead
    NORM: BN
    WITH_BNNECK: True
    POOL_LAYER: GlobalAvgPool
    NECK_FEAT: before
    CLS_LAYER: Linear

  LOSSES:
    NAME: ("CrossEntropyLoss", "TripletLoss",)
    CE:
      EPSILON: 0.1
      SCALE: 1.
    TRI:
      MARGIN: 0.3
      HARD_MINING: True
      NORM_FEAT: False
      SCALE: 1.

INPUT:
  SIZE_TRAIN: [ 64, 32 ]
  SIZE_TEST: [ 64, 32 ]
  REA:
    ENABLED: True
    PROB: 0.5
  FLIP:
    ENABLED: True
  PADDING:
    ENABLED: True

DATALOADER:
  SAMPLER_TRAIN: NaiveIdentitySampler
  NUM_INSTANCE: 4
  NUM_WORKERS: 8

SOLVER:
  AMP:
    ENABLED: True
  OPT: Adam
  MAX_EPOCH: 120
  BASE_LR: 0.00035
  WEIGHT_DECAY: 0.0005
  IMS_PER_BATCH: 64
  SCHED: MultiStepLR
  STEPS: [ 40, 90 ]
  GAMMA: 0.1
  WARMUP_FACTOR: 0.1
  WARMUP_ITERS: 2000
  CHECKPOINT_PERIOD: 30

TEST:
  EVAL_PERIOD: 30
  IMS_PER_BATCH: 128

CUDNN_BENCHMARK: True
"""

BASE_AGW = """\
_BASE_: Base-bagtricks.yml

MODEL:
  BACKBONE:
    WITH_NL: True

  HEADS:
    POOL_LAYER: GeneralizedMeanPooling

  LOSSES:
    NAME: ("CrossEntropyLoss", "TripletLoss")
    CE:
      EPSILON: 0.1
      SCALE: 1.0
    TRI:
      MARGIN: 0.0
      HARD_MINING: False
      SCALE: 1.0
"""

BASE_SBS = """\
_BASE_: Base-bagtricks.yml

MODEL:
  FREEZE_LAYERS: [ backbone ]

  BACKBONE:
    WITH_NL: True

  HEADS:
    NECK_FEAT: after
    POOL_LAYER: GeneralizedMeanPoolingP
    CLS_LAYER: CircleSoftmax
    SCALE: 64
    MARGIN: 0.35

  LOSSES:
    NAME: ("CrossEntropyLoss", "TripletLoss",)
    TRI:
      MARGIN: 0.0
      HARD_MINING: True
      NORM_FEAT: False
      SCALE: 1.0

INPUT:
  SIZE_TRAIN: [ 96, 32 ]
  SIZE_TEST: [ 96, 32 ]
  AUTOAUG:
    ENABLED: True
    PROB: 0.1

DATALOADER:
  NUM_INSTANCE: 16

SOLVER:
  MAX_EPOCH: 60
  SCHED: CosineAnnealingLR
  DELAY_EPOCHS: 30
  ETA_MIN_LR: 0.0000007
  FREEZE_ITERS: 1000
  CHECKPOINT_PERIOD: 20

TEST:
  EVAL_PERIOD: 10
  IMS_PER_BATCH: 128
"""


def child(base: str, name: str, ibn: bool) -> str:
    """A configs/Market1501/*.yml file in fast-reid's style."""
    backbone = "MODEL:\n  BACKBONE:\n    WITH_IBN: True\n\n" if ibn else "MODEL:\n  HEADS:\n    NUM_CLASSES: 751\n\n"
    return (f'_BASE_: "../{base}"\n\n{backbone}DATASETS:\n  NAMES: ("Market1501",)\n  TESTS: ("Market1501",)\n\n'
            f'OUTPUT_DIR: "logs/market1501/{name}"\n')


CONFIGS = {f"{name}{suffix}": (base, suffix == "_R50-ibn")
           for name, base in (("bagtricks", "Base-bagtricks.yml"), ("AGW", "Base-AGW.yml"), ("sbs", "Base-SBS.yml"))
           for suffix in ("_R50", "_R50-ibn")}


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The six Market1501 configs (BoT / AGW / SBS, R50 and R50-ibn) over fast-reid's three base configs."""
    root = tmp_path_factory.mktemp("fastreid") / "configs"
    (root / "Market1501").mkdir(parents=True)
    for name, text in (("Base-bagtricks.yml", BASE_BAGTRICKS), ("Base-AGW.yml", BASE_AGW),
                       ("Base-SBS.yml", BASE_SBS)):
        (root / name).write_text(text)
    out = {}
    for name, (base, ibn) in CONFIGS.items():
        out[name] = root / "Market1501" / f"{name}.yml"
        out[name].write_text(child(base, name, ibn))
    return out


EXPECTED = {  # what fast-reid's merged config says for each
    "bagtricks": {"with_nl": False, "pool_layer": "GlobalAvgPool", "neck_feat": "before", "size_test": (64, 32)},
    "AGW": {"with_nl": True, "pool_layer": "GeneralizedMeanPooling", "neck_feat": "before", "size_test": (64, 32)},
    "sbs": {"with_nl": True, "pool_layer": "GeneralizedMeanPoolingP", "neck_feat": "after", "size_test": (96, 32)},
}


def randomised(cfg_path: Path, seed: int = 0) -> torch.nn.Module:
    """The config's model with random weights and random norm statistics (every tensor of the checkpoint matters:
    the non-local blocks' BatchNorm is not left at fast-reid's zero init, GeM's p moves away from 3)."""
    torch.manual_seed(seed)
    model = build_fastreid(read_fastreid_config(cfg_path))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.dtype.is_floating_point or t.ndim != 1:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(".p"):
                t.copy_(3.0 + torch.rand(t.shape, generator=g))
            elif name.endswith("weight"):
                t.copy_(1.0 + 0.2 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return model.eval()


def test_base_chains_resolve_as_fast_reid_resolves_them(configs: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # _BASE_ is relative to the naming file, not to the working folder
    merged = plain(load_yaml_with_base(os.path.relpath(configs["sbs_R50-ibn"])))
    model = merged["MODEL"]
    # the child overrides, Base-SBS overrides Base-bagtricks, and both keep what they do not mention
    assert model["BACKBONE"] == {"NAME": "build_resnet_backbone", "NORM": "BN", "DEPTH": "50x", "LAST_STRIDE": 1,
                                 "FEAT_DIM": 2048, "WITH_IBN": True, "PRETRAIN": True, "WITH_NL": True}
    assert model["HEADS"]["NECK_FEAT"] == "after" and model["HEADS"]["WITH_BNNECK"] is True
    assert model["LOSSES"]["TRI"] == {"MARGIN": 0.0, "HARD_MINING": True, "NORM_FEAT": False, "SCALE": 1.0}
    assert model["LOSSES"]["CE"] == {"EPSILON": 0.1, "SCALE": 1.0}
    assert decode(model["LOSSES"]["NAME"]) == ("CrossEntropyLoss", "TripletLoss")  # yacs's literal_eval
    assert merged["INPUT"]["SIZE_TEST"] == [96, 32] and merged["INPUT"]["REA"] == {"ENABLED": True, "PROB": 0.5}
    assert merged["DATASETS"] == {"NAMES": '("Market1501",)', "TESTS": '("Market1501",)'}
    assert merged["OUTPUT_DIR"] == "logs/market1501/sbs_R50-ibn" and "_BASE_" not in merged
    assert merged["SOLVER"]["OPT"] == "Adam" and merged["SOLVER"]["SCHED"] == "CosineAnnealingLR"
    # an absolute _BASE_, a base two levels up, and yacs's decoding of a quoted number
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "abs.yml").write_text(f"_BASE_: {configs['AGW_R50']}\nMODEL:\n  BACKBONE:\n    LAST_STRIDE: '2'\n")
    (deep / "rel.yml").write_text(f"_BASE_: ../../{os.path.relpath(configs['AGW_R50'], tmp_path)}\n")
    abs_cfg, rel_cfg = read_fastreid_config(deep / "abs.yml"), read_fastreid_config(deep / "rel.yml")
    assert abs_cfg.last_stride == 2 and abs_cfg.with_nl and rel_cfg.last_stride == 1
    assert rel_cfg.pool_layer == "GeneralizedMeanPooling"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_six_configs_read_as_fast_reid_reads_them(name: str, configs: dict[str, Path]) -> None:
    cfg = read_fastreid_config(configs[name])
    want = EXPECTED[name.split("_")[0]]
    assert {k: getattr(cfg, k) for k in want} == want
    assert (cfg.depth, cfg.last_stride, cfg.with_ibn, cfg.with_se, cfg.with_bnneck, cfg.embedding_dim) == \
        ("50x", 1, name.endswith("-ibn"), False, True, 0)
    assert cfg.metric == "cosine" and cfg.feature_dim == 2048
    prep = cfg.preprocessing()
    assert (prep.height, prep.width) == want["size_test"] and prep.interpolation == "bicubic"
    assert prep.mean == pytest.approx((0.485, 0.456, 0.406)) and prep.std == pytest.approx((0.229, 0.224, 0.225))
    names = set(build_fastreid(cfg).state_dict())
    assert ("backbone.layer1.0.bn1.IN.weight" in names) == cfg.with_ibn
    assert "backbone.layer4.0.bn1.running_mean" in names  # IBN-a leaves stage 4 alone
    assert ("backbone.layer3.5.bn1.BN.weight" in names) == cfg.with_ibn
    assert ("backbone.NL_2.1.W.1.running_var" in names) == cfg.with_nl == ("backbone.NL_3.2.theta.weight" in names)
    assert ("heads.pool_layer.p" in names) == (cfg.pool_layer == "GeneralizedMeanPoolingP")
    assert {"heads.bottleneck.0.weight", "heads.bottleneck.0.running_mean"} <= names
    assert not any(k.startswith(("backbone.NL_1.", "backbone.NL_4.")) for k in names)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_checkpoints_in_fast_reids_formats_give_the_features_of_the_model_they_came_from(
        name: str, configs: dict[str, Path], tmp_path: Path) -> None:
    model = randomised(configs[name], seed=len(name))
    h, w = EXPECTED[name.split("_")[0]]["size_test"]
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x)
    assert want.shape == (2, 2048) and torch.isfinite(want).all()
    state = model.state_dict()
    variants = {  # fast-reid's Checkpointer: {"model": ..., "optimizer": ..., "scheduler": ..., "iteration": ...}
        "checkpointer": {"model": {**state, "heads.weight": torch.randn(751, 2048)},
                         "optimizer": {"state": {}, "param_groups": [{"lr": 3.5e-4, "params": [0, 1]}]},
                         "scheduler": {"base_lrs": [3.5e-4], "last_epoch": 59}, "iteration": 12345},
        "bare": dict(state),
        "module": {"model": {f"module.{k}": v for k, v in {**state, "heads.weight": torch.randn(3, 2048)}.items()}},
        "older": {"model": {**state, "heads.classifier.weight": torch.randn(702, 2048),
                            "pixel_mean": torch.tensor([123.675, 116.28, 103.53]).view(1, -1, 1, 1),
                            "pixel_std": torch.tensor([58.395, 57.12, 57.375]).view(1, -1, 1, 1)}},
    }
    for variant, obj in variants.items():
        path = tmp_path / f"{variant}.pth"
        torch.save(obj, path)
        loaded, prep = load_zoo_model(f"fastreid:{configs[name]}", path)
        with torch.no_grad():
            assert torch.equal(loaded(x), want), variant
        assert not loaded.training and (prep.height, prep.width) == (h, w) and prep.metric == "cosine"


def _write(folder: Path, text: str, name: str = "bad.yml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


REFUSED = [  # (child config under configs/, what the one-line error says)
    ("MODEL:\n  BACKBONE:\n    NAME: build_osnet_backbone\n",
     "MODEL.BACKBONE.NAME = 'build_osnet_backbone' is not supported (supported: build_resnet_backbone)"),
    ("MODEL:\n  HEADS:\n    POOL_LAYER: gempool\n", "MODEL.HEADS.POOL_LAYER = 'gempool' is not supported"),
    ("MODEL:\n  META_ARCHITECTURE: MGN\n", "MODEL.META_ARCHITECTURE = 'MGN' is not supported"),
    ("MODEL:\n  HEADS:\n    NAME: ClasHead\n", "MODEL.HEADS.NAME = 'ClasHead' is not supported"),
    ("MODEL:\n  BACKBONE:\n    WITH_DCN: True\n", "MODEL.BACKBONE.WITH_DCN = True is not a fast-reid 1.x Baseline key this reader knows"),
    ("MODEL:\n  PIXEL_SCALE: 1\n", "MODEL.PIXEL_SCALE = 1 is not a fast-reid 1.x Baseline key this reader knows"),
    ("MODEL_EMA:\n  ENABLED: True\n", "MODEL_EMA is not a fast-reid 1.x Baseline key this reader knows"),
    ("MODEL:\n  BACKBONE:\n    NORM: GN\n", "MODEL.BACKBONE.NORM = 'GN' is not supported"),
    ("MODEL:\n  BACKBONE:\n    DEPTH: 200x\n", "MODEL.BACKBONE.DEPTH = '200x' is not supported"),
    ("MODEL:\n  BACKBONE:\n    DEPTH: 18x\n", "MODEL.BACKBONE.FEAT_DIM = 2048 (set in"),
    ("MODEL:\n  BACKBONE:\n    LAST_STRIDE: two\n", "MODEL.BACKBONE.LAST_STRIDE = 'two' is of type str; fast-reid's default is of type int"),
    ("MODEL:\n  BACKBONE:\n    WITH_IBN: 1\n", "MODEL.BACKBONE.WITH_IBN = 1 is of type int; fast-reid's default is of type bool"),
    ("MODEL:\n  HEADS:\n    NECK_FEAT: middle\n", "MODEL.HEADS.NECK_FEAT = 'middle' is not supported"),
    ("MODEL:\n  PIXEL_STD: [1, 0, 1]\n", "MODEL.PIXEL_STD = [1, 0, 1] must be 3 finite numbers"),
    ("INPUT:\n  SIZE_TEST: [256]\n", "INPUT.SIZE_TEST = [256] must be [height, width]"),
    ("INPUT:\n  CROP:\n    ENABLED: True\n", "INPUT.CROP.ENABLED = True is not supported"),
    ("INPUT:\n  DO_AUGMIX: True\n", "INPUT.DO_AUGMIX = True is not a fast-reid 1.x Baseline key this reader knows"),
    ("TEST:\n  METRIC: jaccard\n", "TEST.METRIC = 'jaccard' is not supported (supported: cosine, euclidean)"),
    ("MODEL:\n  BACKBONE: resnet50\n", "MODEL.BACKBONE = 'resnet50' is a value where fast-reid has a section"),
    ("INPUT:\n  SIZE_TEST:\n    H: 256\n", "INPUT.SIZE_TEST is a mapping but its base sets a value there"),
    ("MODEL: [oops\n", "not valid YAML at line"),
    ("- MODEL\n", "a fast-reid config is a YAML mapping"),
]


@pytest.mark.parametrize("text, expected", REFUSED)
def test_unsupported_configs_are_refused_in_one_line_naming_the_file_key_and_value(
        text: str, expected: str, configs: dict[str, Path]) -> None:
    base = configs["bagtricks_R50"].parent.parent
    path = _write(base, "_BASE_: Base-bagtricks.yml\n" + text if not text.startswith(("MODEL: [", "- ")) else text)
    with pytest.raises(OpreidError) as exc:
        read_fastreid_config(path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(path)) and expected in msg, msg


def test_a_value_set_in_a_base_names_that_base(configs: dict[str, Path], tmp_path: Path) -> None:
    base = _write(tmp_path, "MODEL:\n  HEADS:\n    POOL_LAYER: Flatten\n", "Base-odd.yml")
    path = _write(tmp_path, "_BASE_: Base-odd.yml\nOUTPUT_DIR: logs\n")
    with pytest.raises(OpreidError, match=rf"^{re.escape(str(path))}: MODEL.HEADS.POOL_LAYER = 'Flatten' \(set in "
                                          rf"{re.escape(str(base))}\) is not supported"):
        read_fastreid_config(path)


def test_missing_files_and_broken_chains_are_one_line(configs: dict[str, Path], tmp_path: Path) -> None:
    weights = tmp_path / "w.pth"
    torch.save({"model": {"x": torch.zeros(1)}}, weights)
    cases = {
        f"fastreid:{tmp_path / 'nope.yml'}": f"--zoo fastreid:{tmp_path / 'nope.yml'}: {tmp_path / 'nope.yml'}: "
                                             "fast-reid config not found",
        "fastreid:": "give the fast-reid config file",
        f"fastreid:{_write(tmp_path, '_BASE_: ../Base-none.yml', 'orphan.yml')}":
            f"{tmp_path / '..' / 'Base-none.yml'}: fast-reid config not found (the _BASE_ of {tmp_path / 'orphan.yml'})",
        f"fastreid:{_write(tmp_path, '_BASE_: loop2.yml', 'loop1.yml')}": "makes a cycle",
        f"fastreid:{_write(tmp_path, '_BASE_: https://example.org/Base.yml', 'url.yml')}": "is a URL; nothing is "
                                                                                            "downloaded",
        f"fastreid:{_write(tmp_path, '_BASE_: [a, b]', 'list.yml')}": "is not the path of a base config",
    }
    _write(tmp_path, "_BASE_: loop1.yml", "loop2.yml")
    for spec, expected in cases.items():
        with pytest.raises(OpreidError) as exc:
            load_zoo_model(spec, weights)
        assert "\n" not in str(exc.value) and expected in str(exc.value), (spec, str(exc.value))


def test_checkpoints_that_do_not_fit_are_one_line(configs: dict[str, Path], tmp_path: Path) -> None:
    plain_r50 = randomised(configs["bagtricks_R50"]).state_dict()
    path = tmp_path / "bot_R50.pth"
    torch.save({"model": plain_r50, "iteration": 3}, path)
    with pytest.raises(OpreidError) as exc:
        load_zoo_model(f"fastreid:{configs['bagtricks_R50-ibn']}", path)  # the right format, the wrong config
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{path}: does not fit fastreid:")
    assert "missing (e.g. backbone.layer1.0.bn1.BN.bias" in msg and "unexpected (e.g. backbone.layer1.0.bn1.bias" in msg
    with pytest.raises(OpreidError, match=r"\d+ key\(s\) missing \(e\.g\. backbone\.NL_2\.0\.W\.0\.bias"):
        load_zoo_model(f"fastreid:{configs['AGW_R50']}", path)
    torch.save({"model": {**plain_r50, "pixel_mean": torch.tensor([127.5, 127.5, 127.5]).view(1, 3, 1, 1)}}, path)
    with pytest.raises(OpreidError, match=r"bot_R50.pth: its pixel_mean \[127.5, 127.5, 127.5\] is not .*"
                                          r"bagtricks_R50.yml's MODEL.PIXEL_MEAN \[123.675"):
        load_zoo_model(f"fastreid:{configs['bagtricks_R50']}", path)
    torch.save({"iteration": 3, "model": "elsewhere"}, path)
    with pytest.raises(OpreidError, match=r"bot_R50.pth: no state dict found \(expected a dict of tensors or "
                                          r"\{'model': \.\.\.\}; its top-level keys: iteration, model\)"):
        load_zoo_model(f"fastreid:{configs['bagtricks_R50']}", path)
    torch.save({"state_dict": plain_r50, "epoch": 120}, path)  # torchreid's wrapper given to --zoo fastreid:
    with pytest.raises(OpreidError, match=r"its top-level keys: epoch, state_dict; it looks like a torchreid "
                                          r"checkpoint: use --zoo torchreid:ARCH\)$"):
        load_zoo_model(f"fastreid:{configs['bagtricks_R50']}", path)


def test_se_depths_and_heads_beyond_the_six(tmp_path: Path) -> None:
    """ResNet-18/34/101, SE, an embedding conv, no BNNeck, the other poolings: the keys fast-reid names."""
    (tmp_path / "Base.yml").write_text(BASE_BAGTRICKS)
    cases = {
        "MODEL:\n  BACKBONE:\n    DEPTH: 18x\n    FEAT_DIM: 512\n    WITH_SE: True\n    WITH_NL: True\n"
        "  HEADS:\n    POOL_LAYER: GlobalMaxPool\n    EMBEDDING_DIM: 256\n":
            (256, {"backbone.layer4.1.se.fc.2.weight", "heads.bottleneck.0.weight", "heads.bottleneck.1.running_var"}),
        "MODEL:\n  BACKBONE:\n    DEPTH: 34x\n    FEAT_DIM: 512\n    NORM: syncBN\n  HEADS:\n"
        "    POOL_LAYER: AdaptiveAvgMaxPool\n    WITH_BNNECK: False\n": (512, {"backbone.layer3.5.conv2.weight"}),
        "MODEL:\n  BACKBONE:\n    DEPTH: 101x\n    WITH_NL: True\n    WITH_IBN: True\n    LAST_STRIDE: 2\n"
        "  HEADS:\n    POOL_LAYER: FastGlobalAvgPool\n    NORM: GhostBN\n":
            (2048, {"backbone.NL_3.8.phi.weight", "backbone.layer3.22.bn1.IN.bias"}),
        "MODEL:\n  HEADS:\n    POOL_LAYER: ClipGlobalAvgPool\n    EMBEDDING_DIM: 128\n    WITH_BNNECK: False\n":
            (128, {"heads.bottleneck.0.weight"}),
        "MODEL:\n  HEADS:\n    POOL_LAYER: Identity\n": (2048, {"heads.bottleneck.0.num_batches_tracked"}),
    }
    for i, (text, (dim, keys)) in enumerate(cases.items()):
        path = _write(tmp_path, "_BASE_: Base.yml\n" + text, f"c{i}.yml")
        model = randomised(path, seed=i)
        assert keys <= set(model.state_dict()), (text, keys - set(model.state_dict()))
        with torch.no_grad():
            feats = model(torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(i)))
        assert feats.shape == (2, dim) and torch.isfinite(feats).all() and model.feature_dim == dim
        ckpt = tmp_path / f"c{i}.pth"
        torch.save({"model": model.state_dict()}, ckpt)
        loaded, _ = load_zoo_model(f"fastreid:{path}", ckpt)
        with torch.no_grad():
            assert torch.equal(loaded(torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(i))), feats)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, configs: dict[str, Path]) -> dict:
    """A tiny CUHK03-style tree of 64x32 crops, an SBS R50-ibn config tested at 48x24 with its own mean/std (so the
    bicubic resize and the normalisation both matter), and a fast-reid checkpoint of it."""
    from onnx_helpers import cuhk03_tree

    tmp = tmp_path_factory.mktemp("fastreid_cli")
    root = cuhk03_tree(tmp / "data", train_ids=2, val_ids=3)
    cfg = tmp / "sbs_small.yml"
    cfg.write_text(f"_BASE_: {configs['sbs_R50-ibn']}\nINPUT:\n  SIZE_TEST: [48, 24]\nMODEL:\n"
                   "  PIXEL_MEAN: [120.0, 110.0, 100.0]\n  PIXEL_STD: [60.0, 50.0, 40.0]\nTEST:\n  METRIC: euclidean\n")
    model = randomised(cfg, seed=5)
    ckpt = tmp / "model_final.pth"
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()},
                "optimizer": {}, "scheduler": {}, "iteration": 9}, ckpt)
    return {"tmp": tmp, "root": root, "cfg": cfg, "ckpt": ckpt, "model": model}


def _by_hand(model: torch.nn.Module, paths: list[str], resample: int) -> np.ndarray:
    """fast-reid's test path written out: PIL decode, Resize((48, 24), bicubic), 0-255 floats, (x - mean) / std."""
    mean, std = np.array([120.0, 110.0, 100.0]), np.array([60.0, 50.0, 40.0])
    batch = [((np.asarray(Image.open(p).convert("RGB").resize((24, 48), resample), dtype=np.float64) - mean) / std)
             .transpose(2, 0, 1) for p in paths]
    with torch.no_grad():
        return model(torch.from_numpy(np.stack(batch)).float()).numpy()


def test_extract_and_evaluate_take_a_fastreid_config(world: dict) -> None:
    from onnx_helpers import cli_ok

    from opreid_bench.evaluation.features import read_feature_file

    tmp, spec = world["tmp"], f"fastreid:{world['cfg']}"
    data = ["--dataset", "cuhk03_labeled", "--root", world["root"]]
    info = cli_ok(["extract", "--zoo", spec, "--weights", world["ckpt"], *data, "--out", tmp / "f.h5", "--json"])
    assert info["dim"] == 2048 and info["metric"] == "euclidean" and info["interpolation"] == "bicubic"
    query, gallery, attrs = read_feature_file(tmp / "f.h5")
    assert attrs["method"] == spec and (attrs["height"], attrs["width"]) == (48, 24)
    want = _by_hand(world["model"], list(query.paths), Image.BICUBIC)
    got = np.asarray(query.features)
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
    bilinear = _by_hand(world["model"], list(query.paths), Image.BILINEAR)
    assert np.abs(got - bilinear).max() > 100 * np.abs(got - want).max()  # the filter is what makes them agree
    report = cli_ok(["evaluate", "--zoo", spec, "--weights", world["ckpt"], *data, "--json"])
    assert 0.0 <= report["mAP"] <= 1.0 and report["num_valid_queries"] > 0


def test_export_zoo_writes_the_bicubic_resize_and_onnx_runs_it(world: dict) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from onnx_helpers import cli_ok

    from opreid_bench.engine.onnx_export import export_zoo
    from opreid_bench.engine.onnx_runner import META_PREFIX, open_session
    from opreid_bench.evaluation.features import read_feature_file

    tmp, spec = world["tmp"], f"fastreid:{world['cfg']}"
    info = export_zoo(spec, world["ckpt"], tmp / "sbs.onnx")
    assert info["max_abs_diff"] <= 1e-4 and info["input_size"] == "48x24" and info["metric"] == "euclidean"
    assert info["backbone"] == "ResNet-50-IBN + non-local, GeneralizedMeanPoolingP, BNNeck"
    meta = open_session(tmp / "sbs.onnx").get_modelmeta().custom_metadata_map
    assert meta[f"{META_PREFIX}interpolation"] == "bicubic" and meta[f"{META_PREFIX}metric"] == "euclidean"
    assert [float(v) for v in meta[f"{META_PREFIX}mean"].split(",")] == pytest.approx([120 / 255, 110 / 255, 100 / 255])
    data = ["--dataset", "cuhk03_labeled", "--root", world["root"]]
    cli_ok(["extract", "--onnx", tmp / "sbs.onnx", *data, "--out", tmp / "onnx.h5", "--json"])
    if not (tmp / "f.h5").exists():
        cli_ok(["extract", "--zoo", spec, "--weights", world["ckpt"], *data, "--out", tmp / "f.h5", "--json"])
    q_onnx, _, attrs = read_feature_file(tmp / "onnx.h5")
    q_zoo, _, _ = read_feature_file(tmp / "f.h5")
    assert attrs["interpolation"] == "bicubic" and json.loads(attrs["preprocessing_from"])["interpolation"] == \
        "metadata"
    a, b = np.asarray(q_onnx.features), np.asarray(q_zoo.features)
    assert np.abs(a - b).max() <= 1e-4 * max(1.0, float(np.abs(b).max()))
