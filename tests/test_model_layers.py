"""Layers against slow, explicit references: DNL (Eq. 1), non-local, reconstructive pooling (Eq. 2), GeM, BNNeck."""

from __future__ import annotations

import math

import torch

from opreid_bench.modeling.heads import LinearClassifier
from opreid_bench.modeling.layers import BNNeck, DNLBlock, GeM, NonLocalBlock, ReconstructivePooling, RPBranch
from opreid_bench.modeling.layers.gem import _GeMPooling


def _randomise_(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter (incl. the zero-initialised output BN) non-trivial values so the test can fail."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=torch.float64) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=torch.float64) + 0.5)


def _conv1x1(conv: torch.nn.Conv2d, f: torch.Tensor) -> torch.Tensor:
    """Apply a 1x1 conv to one position's feature vector f (C,)."""
    out = conv.weight[:, :, 0, 0] @ f
    return out + conv.bias if conv.bias is not None else out


def _bn2d_eval(bn: torch.nn.BatchNorm2d, v: torch.Tensor) -> torch.Tensor:
    return (v - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


@torch.no_grad()
def dnl_reference(block: DNLBlock, x: torch.Tensor) -> torch.Tensor:
    """Eq. (1) with explicit loops over the positions i and j (one image at a time)."""
    b, c, h, w = x.shape
    n = h * w
    out = torch.empty_like(x)
    for bi in range(b):
        feats = [x[bi, :, p // w, p % w] for p in range(n)]
        q = [_conv1x1(block.query, f) for f in feats]
        k = [_conv1x1(block.key, f) for f in feats]
        v = [_conv1x1(block.value, f) for f in feats]
        m = [_conv1x1(block.mask, f)[0] for f in feats]
        mu_q = sum(q) / n
        mu_k = sum(k) / n
        scale = math.sqrt(block.inter_channels) * block.temperature
        unary_den = sum(math.exp(mj) for mj in m)
        for i in range(n):
            logits = [float((q[i] - mu_q) @ (k[j] - mu_k)) / scale for j in range(n)]
            mx = max(logits)
            den = sum(math.exp(s - mx) for s in logits)
            acc = torch.zeros(block.inter_channels, dtype=x.dtype)
            for j in range(n):
                w_ij = math.exp(logits[j] - mx) / den + math.exp(m[j]) / unary_den
                acc = acc + w_ij * v[j]
            y = block.out[0].weight[:, :, 0, 0] @ acc
            out[bi, :, i // w, i % w] = x[bi, :, i // w, i % w] + _bn2d_eval(block.out[1], y)
    return out


def test_dnl_matches_explicit_loops() -> None:
    torch.manual_seed(0)
    block = DNLBlock(6, temperature=0.05).double().eval()
    _randomise_(block)
    x = torch.randn(2, 6, 3, 2, dtype=torch.float64)
    assert block.inter_channels == 3
    torch.testing.assert_close(block(x), dnl_reference(block, x), rtol=1e-9, atol=1e-9)


def test_dnl_starts_as_identity_and_weights_are_softmaxes() -> None:
    torch.manual_seed(0)
    block = DNLBlock(8).eval()
    x = torch.randn(2, 8, 4, 3)
    torch.testing.assert_close(block(x), x)  # zero-initialised output BN
    pairwise, unary = block.attention(x)
    assert pairwise.shape == (2, 12, 12) and unary.shape == (2, 1, 12)
    torch.testing.assert_close(pairwise.sum(dim=2), torch.ones(2, 12))
    torch.testing.assert_close(unary.sum(dim=2), torch.ones(2, 1))
    # whitening: adding the same vector to every position does not change the pairwise term
    shift = torch.randn(1, 8, 1, 1)
    torch.testing.assert_close(block.attention(x + shift)[0], pairwise, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def non_local_reference(block: NonLocalBlock, x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    n = h * w
    out = torch.empty_like(x)
    for bi in range(b):
        feats = [x[bi, :, p // w, p % w] for p in range(n)]
        th = [_conv1x1(block.theta, f) for f in feats]
        ph = [_conv1x1(block.phi, f) for f in feats]
        g = [_conv1x1(block.g, f) for f in feats]
        for i in range(n):
            y = sum(float(th[i] @ ph[j]) / n * g[j] for j in range(n))
            z = _conv1x1(block.W[0], y)
            out[bi, :, i // w, i % w] = x[bi, :, i // w, i % w] + _bn2d_eval(block.W[1], z)
    return out


def test_non_local_inter_channels_and_reference() -> None:
    for c in (8, 512, 1024):
        block = NonLocalBlock(c)
        assert block.inter_channels == c // 2  # not reduc_ratio // reduc_ratio = 1
        assert block.theta.out_channels == block.phi.out_channels == block.g.out_channels == c // 2
        assert block.W[0].in_channels == c // 2 and block.W[0].out_channels == c
    torch.manual_seed(0)
    block = NonLocalBlock(6).double().eval()
    x = torch.randn(2, 6, 3, 2, dtype=torch.float64)
    torch.testing.assert_close(block(x), x)  # zero-initialised W[1]
    _randomise_(block)
    torch.testing.assert_close(block(x), non_local_reference(block, x), rtol=1e-9, atol=1e-9)


def test_reconstructive_pooling_matches_explicit_loops() -> None:
    torch.manual_seed(0)
    rp = ReconstructivePooling(5).double()
    fmap = torch.randn(3, 5, 4, 2, dtype=torch.float64)
    # at init Wv = I and the mask is near uniform: RP is close to average pooling
    torch.testing.assert_close(rp(fmap), fmap.mean(dim=(2, 3)), rtol=0.05, atol=0.05)
    _randomise_(rp)
    rp.requires_grad_(False)
    got = rp(fmap)
    b, c, h, w = fmap.shape
    for bi in range(b):
        feats = [fmap[bi, :, p // w, p % w] for p in range(h * w)]
        scores = [float(rp.mask.weight[0, :, 0, 0] @ f) for f in feats]
        den = sum(math.exp(s) for s in scores)
        expected = sum(math.exp(s) / den * (rp.value.weight[:, :, 0, 0] @ f) for s, f in zip(scores, feats))
        torch.testing.assert_close(got[bi], expected, rtol=1e-9, atol=1e-9)


def test_rp_branch_outputs() -> None:
    torch.manual_seed(0)
    branch = RPBranch(8, LinearClassifier(8, 3))
    out = branch(torch.randn(4, 8, 3, 2))
    assert set(out) == {"rp_feat", "rp_bn", "rp_logits"}
    assert out["rp_feat"].shape == (4, 8) and out["rp_logits"].shape == (4, 3)
    assert set(RPBranch(8, None)(torch.randn(4, 8, 3, 2))) == {"rp_feat", "rp_bn"}


def test_gem_matches_formula_and_learns_p() -> None:
    gem = GeM().double()
    assert float(gem.p.detach()) == 3.0 and gem.p.requires_grad
    x = torch.rand(2, 4, 3, 5, dtype=torch.float64) + 0.1
    expected = torch.tensor([[float((x[b, c] ** 3).mean() ** (1 / 3)) for c in range(4)] for b in range(2)],
                            dtype=torch.float64)
    torch.testing.assert_close(gem(x), expected)
    gem(x).sum().backward()
    assert gem.p.grad is not None and float(gem.p.grad.abs()) > 0


def test_gem_training_gradients_equal_the_formulas_autograd() -> None:
    # the hand-written backward used in training against autograd through the formula itself, with entries below
    # the clamp (no gradient there), an NHWC input and p away from its start
    gem = GeM().double()
    with torch.no_grad():
        gem.p.fill_(2.6)
    x = (torch.rand(3, 5, 4, 2, dtype=torch.float64) - 0.2).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    weights = torch.randn(3, 5, dtype=torch.float64)
    (gem(x) * weights).sum().backward()
    p_ref = torch.tensor([2.6], dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    ref = x_ref.clamp(min=gem.eps).pow(p_ref).mean(dim=(2, 3)).pow(1.0 / p_ref)
    (ref * weights).sum().backward()
    torch.testing.assert_close(gem(x), ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(gem.p.grad, p_ref.grad)
    assert bool((x.grad[x.detach() < gem.eps] == 0).all()) and float(x.grad.abs().sum()) > 0
    assert torch.autograd.gradcheck(lambda a, b: _GeMPooling.apply(a, b, gem.eps),
                                    (x.detach().clone().requires_grad_(True), p_ref.detach().clone().requires_grad_(True)))
    with torch.no_grad():  # inference (and ONNX export) keeps the formula: the same values
        torch.testing.assert_close(gem(x), ref.detach())


def test_bnneck_bias_frozen_at_zero() -> None:
    neck = BNNeck(16)
    assert not neck.bn.bias.requires_grad and neck.bn.weight.requires_grad
    assert torch.all(neck.bn.bias == 0) and torch.all(neck.bn.weight == 1)



def test_attention_layers_keep_a_channels_last_map_channels_last() -> None:
    """Non-local, DNL (Eq. 1) and RP (Eq. 2) on an NHWC map, as the CPU recipes train: the same values as on NCHW,
    an NHWC output, and in the whole model (ours: DNL in the backbone, GeM + RP on its last map) the gradient that
    reaches the backbone's last map is NHWC too. Reading the map as (B, C, N) gave an NCHW gradient there, which ran
    every elementwise backward below it on mixed layouts, about twice as slowly on a CPU."""
    from opreid_bench.engine.config import load_method_config
    from opreid_bench.engine.criterion import ReIDCriterion
    from opreid_bench.modeling import build_model

    torch.manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(2, 8, 6, 4)
    for layer in (NonLocalBlock(8), DNLBlock(8), ReconstructivePooling(8)):
        for p in layer.parameters():  # DNL / non-local start as the identity: give their output convs weights
            torch.nn.init.normal_(p, std=0.3)
        ref = layer(x)
        out = layer.to(memory_format=cl)(x.contiguous(memory_format=cl))
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        assert out.dim() == 2 or out.is_contiguous(memory_format=cl), type(layer).__name__

    cfg = load_method_config("ours", ["model.backbone=resnet_mini"])
    model = build_model(cfg.model, 4).to(memory_format=cl).train()
    grads: list[torch.Tensor] = []

    def keep_gradient(_module: torch.nn.Module, _inputs: object, out: torch.Tensor) -> None:
        out.register_hook(grads.append)

    model.backbone.register_forward_hook(keep_gradient)
    images = torch.randn(8, 3, 64, 32).contiguous(memory_format=cl)
    loss, _ = ReIDCriterion(cfg.loss)(model(images), torch.arange(4).repeat_interleave(2))
    loss.backward()
    assert len(grads) == 1 and grads[0].dim() == 4 and grads[0].is_contiguous(memory_format=cl)


def _plain_stem(x: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(torch.relu(bn(x)), 3, 2, 1)


def test_fused_stem_equals_bn_relu_maxpool_in_values_gradients_and_running_stats() -> None:
    """The training stem (BN -> ReLU -> 3x3/2 max pool computed on the pooled map) against the plain composition, in
    float64, on NCHW and NHWC maps, with a negative BN scale on some channels (there the window's min is taken)."""
    import copy

    from opreid_bench.modeling.layers.stem_pool import _BNReLUMaxPool, bn_relu_maxpool

    torch.manual_seed(0)
    pool = torch.nn.MaxPool2d(3, stride=2, padding=1)
    for layout in (torch.contiguous_format, torch.channels_last):
        bn = torch.nn.BatchNorm2d(6).double().train()
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([1.5, -0.7, 0.3, -2.0, 1.0, 0.8]))
            bn.bias.copy_(torch.tensor([0.1, 0.4, -0.2, 0.0, 0.5, -0.3]))
        ref_bn = copy.deepcopy(bn)
        x = (torch.randn(4, 6, 9, 7, dtype=torch.float64) * 2 + 0.5).contiguous(memory_format=layout)
        x_ref = x.clone().requires_grad_(True)
        x.requires_grad_(True)
        weights = torch.randn(4, 6, 5, 4, dtype=torch.float64)
        out = bn_relu_maxpool(x, bn, pool)
        assert type(out.grad_fn).__name__ == _BNReLUMaxPool.__name__ + "Backward"  # the fused form ran
        ref = _plain_stem(x_ref, ref_bn)
        torch.testing.assert_close(out, ref)
        (out * weights).sum().backward()
        (ref * weights).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad)
        torch.testing.assert_close(bn.weight.grad, ref_bn.weight.grad)
        torch.testing.assert_close(bn.bias.grad, ref_bn.bias.grad)
        torch.testing.assert_close(bn.running_mean, ref_bn.running_mean)
        torch.testing.assert_close(bn.running_var, ref_bn.running_var)
        assert int(bn.num_batches_tracked) == int(ref_bn.num_batches_tracked) == 1
        assert float(x.grad.abs().sum()) > 0 and bool((out == 0).any())  # the ReLU clipped something


def test_fused_stem_gradcheck_and_plain_form_outside_training() -> None:
    from opreid_bench.modeling.layers.stem_pool import _BNReLUMaxPool, bn_relu_maxpool

    torch.manual_seed(1)
    x = torch.randn(3, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.tensor([0.9, -1.3], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.2, -0.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: _BNReLUMaxPool.apply(*a, 1e-5)[0], (x, w, b))
    bn = torch.nn.BatchNorm2d(2).double()
    pool = torch.nn.MaxPool2d(3, stride=2, padding=1)
    bn.train()
    bn_relu_maxpool(x.detach(), bn, pool)  # some running statistics
    bn.eval()  # running statistics: the plain composition, not the fused form
    out = bn_relu_maxpool(x, bn, pool)
    assert type(out.grad_fn).__name__ != _BNReLUMaxPool.__name__ + "Backward"
    torch.testing.assert_close(out, _plain_stem(x, bn))
    bn.train()
    other_pool = torch.nn.MaxPool2d(2)  # not the stem's pool: the plain composition
    torch.testing.assert_close(bn_relu_maxpool(x, bn, other_pool), other_pool(torch.relu(bn(x))))


def test_resnet_stems_use_the_fused_form_in_training() -> None:
    from opreid_bench.modeling.backbones import build_backbone

    for name in ("resnet_mini", "resnet50"):
        net = build_backbone(name).train()
        stem_out = net.stem(torch.randn(2, 3, 32, 16))
        assert type(stem_out.grad_fn).__name__ == "_BNReLUMaxPoolBackward", name
