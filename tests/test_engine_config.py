"""Method configs (YAML, inherit, --set, errors), the lr schedule and the loss composition per method."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from opreid_bench.engine.config import load_method_config
from opreid_bench.engine.criterion import ReIDCriterion
from opreid_bench.engine.optim import WarmupMultiStep, scaled_schedule
from opreid_bench.errors import ConfigError

TABLE5 = ["baseline", "ours_ablation_1_cbe", "ours_ablation_2_bed", "ours_ablation_3_dnl", "ours_ablation_4_rp",
          "ours"]


def test_methods_follow_the_issue() -> None:
    bot = load_method_config("bot")
    assert (bot.model.backbone, bot.model.last_stride, bot.model.pooling) == ("resnet50", 1, "avg")
    assert bot.loss.ce and bot.loss.label_smoothing == 0.1 and bot.loss.triplet and bot.loss.triplet_margin == 0.3
    assert bot.data.random_erasing and (bot.data.batch_p, bot.data.batch_k) == (16, 4)
    assert (bot.optim.optimizer, bot.optim.lr, bot.optim.warmup_epochs) == ("adam", 3.5e-4, 10)
    assert (bot.optim.milestones, bot.optim.gamma, bot.optim.epochs) == ((40, 70), 0.1, 120)
    base = load_method_config("baseline")
    assert base.model.pooling == "gem" and base.model.non_local and not base.model.dnl
    ours = load_method_config("ours")
    m = ours.model
    assert m.dnl and m.reconstructive_pooling and m.momentum_elimination and m.classifier == "multihead_cosine"
    assert ours.data.cbe and not ours.data.random_erasing and ours.loss.bed and not ours.loss.triplet
    assert ours.loss.bed_alpha == 0.3 and m.me_beta == 0.9 and set(ours.loss.metric_on) == {"global", "rp"}


def test_table5_rows_add_one_component_each() -> None:
    rows = [load_method_config(name) for name in TABLE5]
    switches = [(r.data.cbe, r.loss.bed, r.model.dnl, r.model.reconstructive_pooling, r.model.momentum_elimination)
                for r in rows]
    for i, s in enumerate(switches):
        assert sum(s) == i, (TABLE5[i], s)  # row i has the first i components switched on
        assert s[:i] == (True,) * i
    assert [r.method for r in rows] == TABLE5


def test_overrides_are_yaml_parsed_and_validated() -> None:
    cfg = load_method_config("ours", ["model.dnl=false", "optim.milestones=[3, 5]", "optim.lr=5e-4", "seed=7"])
    assert cfg.model.dnl is False and cfg.optim.milestones == (3, 5) and cfg.optim.lr == 5e-4 and cfg.seed == 7
    with pytest.raises(ConfigError, match="unknown key 'model.dnll'"):
        load_method_config("ours", ["model.dnll=false"])
    with pytest.raises(ConfigError, match="'data.batch_p': expected an integer"):
        load_method_config("bot", ["data.batch_p=many"])
    with pytest.raises(ConfigError, match="'model.dnl': expected true/false"):
        load_method_config("bot", ["model.dnl=3"])
    with pytest.raises(ConfigError, match="model.pooling"):
        load_method_config("bot", ["model.pooling=max"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_method_config("bot", ["model.dnl"])
    with pytest.raises(ConfigError, match="random_erasing=false"):
        load_method_config("baseline", ["data.cbe=true"])
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        load_method_config("nope")


def test_yaml_file_errors_name_file_and_key(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("inherit: ours\nmethod: mine\nloss:\n  bed_alpha: 0.5\n")
    cfg = load_method_config(good)
    assert cfg.method == "mine" and cfg.loss.bed_alpha == 0.5 and cfg.model.dnl  # the rest from ours.yaml
    bad = tmp_path / "bad.yaml"
    bad.write_text("inherit: bot\noptim:\n  epochs: ten\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'optim\.epochs': expected an integer"):
        load_method_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("inherit: bot\ndata:\n  hieght: 128\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml.*unknown key 'data\.hieght'"):
        load_method_config(typo)
    loop = tmp_path / "loop.yaml"
    loop.write_text("inherit: loop.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_method_config(loop)


def test_config_round_trips_through_a_dict() -> None:
    from opreid_bench.engine.config import config_from_dict

    cfg = load_method_config("ours", ["optim.epochs=3"])
    assert config_from_dict(cfg.to_dict()) == cfg


def test_progressive_resizing_is_validated() -> None:
    cfg = load_method_config("ours", ["optim.epochs=10", "data.low_res_epochs=6"])
    assert (cfg.data.low_res_epochs, cfg.data.low_res_factor) == (6, 2)
    with pytest.raises(ConfigError, match="low_res_epochs.*test size"):
        load_method_config("ours", ["optim.epochs=10", "data.low_res_epochs=10"])
    with pytest.raises(ConfigError, match="low_res_factor.*divide"):
        load_method_config("ours", ["data.height=100", "data.low_res_factor=3"])


def test_a_stored_config_from_before_a_new_key_is_the_same_run() -> None:
    from opreid_bench.engine.config import config_differences, with_defaults

    cfg = load_method_config("ours")
    old = cfg.to_dict()
    del old["data"]["low_res_epochs"], old["data"]["low_res_factor"]  # written before progressive resizing
    assert config_differences(old, cfg.to_dict())  # the raw dicts differ ...
    assert config_differences(with_defaults(old), cfg.to_dict()) == []  # ... the configs do not
    changed = {**old, "data": {**old["data"], "low_res_epochs": 3}}
    assert config_differences(with_defaults(changed), cfg.to_dict()) == ["data.low_res_epochs: 3 a, 0 b"]
    assert with_defaults({"data": {"batch_p": "many"}}) == {"data": {"batch_p": "many"}}  # unparseable: as stored


def test_warmup_multistep_schedule() -> None:
    rule = WarmupMultiStep(warmup_epochs=10, warmup_factor=0.1, milestones=(40, 70), gamma=0.1)
    assert rule(0) == pytest.approx(0.1) and rule(5) == pytest.approx(0.55) and rule(10) == 1.0
    assert rule(39) == 1.0 and rule(40) == pytest.approx(0.1) and rule(70) == pytest.approx(0.01)
    assert scaled_schedule(12) == {"warmup_epochs": 1, "milestones": [4, 7]}
    assert scaled_schedule(1) == {"warmup_epochs": 0, "milestones": []}


def test_criterion_composition_per_method() -> None:
    torch.manual_seed(0)
    feats = torch.randn(8, 16)
    targets = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    outputs = {"global_feat": feats, "logits": torch.randn(8, 4), "rp_feat": torch.randn(8, 16),
               "rp_logits": torch.randn(8, 4)}
    _, bot_parts = ReIDCriterion(load_method_config("bot").loss)(outputs, targets)
    assert set(bot_parts) == {"ce_global", "triplet_global", "loss"}  # rp outputs ignored: bot lists only global
    total, ours_parts = ReIDCriterion(load_method_config("ours").loss)(outputs, targets)
    # Eq. (5): L = L_bed^rpf + L_bed^gf + L_c (identity loss on both branches)
    assert set(ours_parts) == {"ce_global", "bed_global", "ce_rp", "bed_rp", "loss"}
    parts_sum = sum(v for k, v in ours_parts.items() if k != "loss")
    assert float(total) == pytest.approx(parts_sum, rel=1e-6)
    no_rp = {k: v for k, v in outputs.items() if not k.startswith("rp")}
    _, parts = ReIDCriterion(load_method_config("ours_ablation_3_dnl").loss)(no_rp, targets)
    assert set(parts) == {"ce_global", "bed_global", "loss"}


def test_a_head_count_that_does_not_divide_the_feature_is_refused_at_load() -> None:
    """The multi-head classifier splits the backbone's feature equally: a count that does not divide it must fail when
    the config is read (also in `reproduce --dry-run`), not as a traceback when the model is built."""
    from opreid_bench.errors import ConfigError
    from opreid_bench.modeling.backbones import BACKBONES
    from opreid_bench.modeling.config import BACKBONE_FEATURE_DIMS

    assert {n: BACKBONES.get(n)().out_channels for n in BACKBONES.names()} == BACKBONE_FEATURE_DIMS
    with pytest.raises(ConfigError, match=r"model.num_heads=3 must divide the resnet50 feature dimension 2048"):
        load_method_config("ours", ["model.num_heads=3"])
    assert load_method_config("ours", ["model.backbone=mobilenetv2", "model.num_heads=5"]).model.num_heads == 5
    with pytest.raises(ConfigError, match="'seed' must be >= 0, got -1"):
        load_method_config("ours", ["seed=-1"])


@pytest.mark.parametrize("override, message", [
    ("data.flip_p=2.0", "'data.flip_p' is a probability and must lie in [0, 1], got 2.0"),
    ("data.re_prob=-1", "'data.re_prob' is a probability"),
    ("loss.ce_weight=-1", "'loss.ce_weight' must be >= 0, got -1"),
])
def test_probabilities_and_weights_out_of_range_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_method_config("ours", [override])
