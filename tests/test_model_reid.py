"""ReIDModel: train/eval outputs, RP and classifiers absent at inference, ME (Eq. 6), config and pretrained errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from opreid_bench.errors import CheckpointError, ConfigError
from opreid_bench.modeling import ModelConfig, ReIDModel, build_model, count_parameters
from opreid_bench.modeling.layers import DNLBlock, MomentumElimination, NonLocalBlock

H, W = 32, 16  # tiny inputs keep the suite fast; stride 16 gives a 2x1 map


def _ours(**kw: object) -> ModelConfig:
    base = dict(backbone="mobilenetv2", pooling="gem", dnl=True, reconstructive_pooling=True,
                classifier="multihead_cosine", retrieval_feature="pooled", momentum_elimination=True)
    base.update(kw)
    return ModelConfig(**base)


def test_train_mode_outputs_and_eval_features() -> None:
    torch.manual_seed(0)
    model = build_model(_ours(), num_classes=5)
    assert model.feat_dim == 1280
    assert all(isinstance(m, DNLBlock) for m in model.backbone.attention.values())
    assert len(model.backbone.attention) == 5
    x = torch.randn(4, 3, H, W)
    out = model.train()(x)
    assert set(out) == {"global_feat", "global_bn", "logits", "rp_feat", "rp_bn", "rp_logits"}
    assert out["logits"].shape == (4, 5) and out["rp_feat"].shape == (4, 1280)
    loss = out["logits"].sum() + out["rp_logits"].sum() + out["global_feat"].sum()
    loss.backward()
    assert model.rp_branch.pool.mask.weight.grad is not None
    feats = model.eval()(x)
    assert feats.shape == (4, 1280)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(4))  # ME output is re-normalised


def test_eval_forward_uses_no_rp_or_classifier() -> None:
    torch.manual_seed(0)
    model = build_model(_ours(), num_classes=5)
    model.train()(torch.randn(4, 3, H, W))  # one ME update so that mu is non-zero
    model.eval()
    x = torch.randn(3, 3, H, W)
    with torch.no_grad():
        full = model(x)
    stripped = copy.deepcopy(model)
    stripped.rp_branch = None
    stripped.classifier = None
    with torch.no_grad():
        torch.testing.assert_close(stripped(x), full)
    # parameter count at inference excludes exactly the RP branch and the classifiers
    training_only = sum(p.numel() for p in model.rp_branch.parameters()) + model.classifier.weight.numel()
    assert count_parameters(model, inference_only=True) == count_parameters(model, inference_only=False) - training_only
    assert count_parameters(model) == count_parameters(stripped, inference_only=False)


def test_me_update_eq6_and_inference_subtraction() -> None:
    me = MomentumElimination(4, beta=0.9)
    b1 = torch.tensor([[3.0, 0, 0, 0], [0, 2.0, 0, 0]])
    b2 = torch.tensor([[0, 0, 5.0, 0], [1.0, 0, 0, 0]])
    me.update(b1)
    mu1 = 0.1 * F.normalize(b1, dim=1).mean(0)
    torch.testing.assert_close(me.mu, mu1)
    me.update(b2)
    mu2 = 0.9 * mu1 + 0.1 * F.normalize(b2, dim=1).mean(0)
    torch.testing.assert_close(me.mu, mu2)
    assert int(me.num_updates) == 2
    z = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0]])
    expected = F.normalize(F.normalize(z, dim=1) - mu2, dim=1)
    torch.testing.assert_close(me(z), expected)
    # TDE: remove alpha * cos(z, mu) * mu_hat
    tde = MomentumElimination(4, beta=0.9, mode="tde", alpha=1.0)
    tde.mu.copy_(mu2)
    zn = F.normalize(z, dim=1)
    mu_hat = mu2 / mu2.norm()
    cos = (zn @ mu_hat).unsqueeze(1)
    torch.testing.assert_close(tde(z), F.normalize(zn - cos * mu_hat, dim=1))
    assert torch.allclose(tde(z) @ mu_hat, torch.zeros(2), atol=1e-6)  # alpha=1 removes the mu component fully
    assert set(me.state_dict()) == {"mu", "num_updates"}


def test_model_me_buffer_updates_in_train_only_and_is_saved() -> None:
    torch.manual_seed(0)
    model = build_model(_ours(reconstructive_pooling=False, dnl=False), num_classes=3)
    assert "me.mu" in model.state_dict()
    x = torch.randn(4, 3, H, W)
    out = model.train()(x)
    # ME, Eq. (6): mu comes from the features after the global pooling (Sec. 3.2, ME paragraph), not from the BNNeck output
    torch.testing.assert_close(model.me.mu, 0.1 * F.normalize(out["global_feat"].detach(), dim=1).mean(0))
    before = model.me.mu.clone()
    model.eval()(x)
    torch.testing.assert_close(model.me.mu, before)
    restored = build_model(_ours(reconstructive_pooling=False, dnl=False), num_classes=3)
    restored.load_state_dict(model.state_dict())
    torch.testing.assert_close(restored.me.mu, before)


def test_baseline_resnet50_non_local_placement_and_extract() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet50", non_local=True), num_classes=4)
    blocks = model.backbone.attention
    assert sorted(blocks) == ["layer2_2", "layer2_3", "layer3_3", "layer3_4", "layer3_5"]
    assert all(isinstance(b, NonLocalBlock) for b in blocks.values())
    assert [b.inter_channels for b in blocks.values()] == [256, 256, 512, 512, 512]
    model.train()
    feats = model.extract(torch.randn(2, 3, 64, 32))
    assert feats.shape == (2, 2048) and model.training  # mode restored
    assert model.classifier.weight.shape == (4, 2048) and model.rp_branch is None and model.me is None


def test_feature_extractor_without_classes() -> None:
    model = build_model(ModelConfig(backbone="mobilenetv2", pooling="avg"), num_classes=0)
    assert model.classifier is None
    out = model.train()(torch.randn(2, 3, H, W))
    assert set(out) == {"global_feat", "global_bn"}


def test_config_validation() -> None:
    assert ModelConfig().attention is None
    assert ModelConfig(non_local=True, dnl=True).attention == "dnl"
    for bad in (dict(backbone="vgg"), dict(pooling="max"), dict(classifier="arc"), dict(me_mode="x"),
                dict(last_stride=3), dict(me_beta=1.0), dict(dnl="yes"), dict(num_heads=0), dict(cos_tau=-1)):
        with pytest.raises(ConfigError, match="model."):
            ModelConfig(**bad)
    cfg = ModelConfig()
    cfg.pooling = "median"  # mutated after construction (e.g. by --set): build_model re-validates
    with pytest.raises(ConfigError, match="pooling"):
        build_model(cfg, 3)


def test_pretrained_missing_file_and_shared_weights(tmp_path: Path, mobilenet_weights: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        build_model(ModelConfig(backbone="mobilenetv2", pretrained=str(tmp_path / "missing.pth")), 3)
    model = build_model(_ours(pretrained=str(mobilenet_weights)), num_classes=3)
    assert isinstance(model, ReIDModel)
    state = torch.load(mobilenet_weights, map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.backbone.features[0][0].weight, state["features.0.0.weight"])
    assert model.pretrained_report is not None and len(model.pretrained_report.loaded) == len(state) - 2


def test_me_is_active_after_training_steps_on_non_centred_data() -> None:
    """ME must change retrieval: mu far from 0 and distances changed (BNNeck-fed ME had ||mu|| ~ 0.002)."""
    torch.manual_seed(0)
    model = build_model(_ours(reconstructive_pooling=False, dnl=False), num_classes=4)
    # a small stand-in backbone (1x1 conv + ReLU, like any CNN's last stage) whose features differ between inputs
    model.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, model.feat_dim, 1), torch.nn.ReLU())
    g = torch.Generator().manual_seed(1)

    def images(n: int) -> torch.Tensor:  # non-centred: a per-image colour plus texture
        return torch.rand(n, 3, 1, 1, generator=g) * 2 + torch.rand(n, 3, H, W, generator=g)

    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(12):
        out = model.train()(images(8))
        opt.zero_grad()
        out["logits"].logsumexp(dim=1).mean().backward()
        opt.step()
    assert float(model.me.mu.norm()) > 0.3  # (1 - 0.9**12) of the mean pooled direction
    model.eval()
    x = images(6)
    with torch.no_grad():
        with_me = model(x)
        model.me_at_inference = False
        without_me = F.normalize(model(x), dim=1)
    cos = (with_me * without_me).sum(dim=1)
    assert float(cos.max()) < 0.99  # the retrieval feature moved
    d_with, d_without = torch.cdist(with_me, with_me), torch.cdist(without_me, without_me)
    assert float((d_with - d_without).abs().max()) > 0.05  # and so did the distances


def test_me_needs_the_pooled_retrieval_feature() -> None:
    with pytest.raises(ConfigError, match="retrieval_feature=pooled"):
        ModelConfig(momentum_elimination=True)
    cfg = ModelConfig(backbone="mobilenetv2", retrieval_feature="pooled")
    model = build_model(cfg, num_classes=0).eval()
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        out = model.train()(x)
        model.eval()
        torch.testing.assert_close(model(x), model.pool(model.backbone(x)))  # no ME: the plain pooled feature
    assert out["global_feat"].shape == (2, 1280)


def test_ours_and_ours_no_me_differ_only_in_me() -> None:
    from opreid_bench.engine.config import load_method_config

    ours, no_me = load_method_config("ours"), load_method_config("ours_no_me")
    assert ours.model.momentum_elimination and not no_me.model.momentum_elimination
    a, b = vars(ours.model).copy(), vars(no_me.model).copy()
    a.pop("momentum_elimination"), b.pop("momentum_elimination")
    assert a == b and ours.loss == no_me.loss and ours.data == no_me.data and ours.optim == no_me.optim
    assert ours.model.classifier == "multihead_cosine" and ours.model.retrieval_feature == "pooled"
    # ME changes no weight: one seed trains both to identical parameters
    torch.manual_seed(3)
    m1 = build_model(_ours(reconstructive_pooling=False, dnl=False), num_classes=3)
    m2 = build_model(_ours(reconstructive_pooling=False, dnl=False, momentum_elimination=False), num_classes=3)
    m2.load_state_dict({k: v for k, v in m1.state_dict().items() if not k.startswith("me.")})
    for model in (m1, m2):
        torch.manual_seed(5)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(3):
            out = model.train()(torch.rand(4, 3, H, W))
            opt.zero_grad()
            out["logits"].logsumexp(dim=1).mean().backward()
            opt.step()
    for (k, v1), (_, v2) in zip(m2.state_dict().items(), ((k, m1.state_dict()[k]) for k in m2.state_dict())):
        torch.testing.assert_close(v1, v2, msg=k)
