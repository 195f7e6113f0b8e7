"""Classifiers: the multi-head cosine classifier (L_c) against a per-head reference; BoT's linear classifier."""

from __future__ import annotations

import math

import pytest
import torch

from opreid_bench.modeling.heads import LinearClassifier, MultiHeadCosineClassifier, build_classifier


@torch.no_grad()
def multihead_reference(clf: MultiHeadCosineClassifier, x: torch.Tensor) -> torch.Tensor:
    """Explicit loops: logit[b, k] = sum_h (tau/H) <x_bh/||x_bh||, w_kh/(||w_kh|| + gamma)>."""
    b, c = x.shape
    k = clf.weight.shape[0]
    d = c // clf.num_heads
    out = torch.zeros(b, k, dtype=x.dtype)
    for bi in range(b):
        for ki in range(k):
            for h in range(clf.num_heads):
                xs = x[bi, h * d:(h + 1) * d]
                ws = clf.weight[ki, h * d:(h + 1) * d]
                xn = xs / math.sqrt(float(xs @ xs))
                wn = ws / (math.sqrt(float(ws @ ws)) + clf.gamma)
                out[bi, ki] += clf.tau / clf.num_heads * float(xn @ wn)
    return out


def test_multihead_cosine_matches_reference() -> None:
    torch.manual_seed(0)
    clf = MultiHeadCosineClassifier(8, 5, num_heads=2, tau=16.0, gamma=1 / 32).double()
    x = torch.randn(3, 8, dtype=torch.float64) * 7
    torch.testing.assert_close(clf(x), multihead_reference(clf, x))


def test_multihead_cosine_normalisation() -> None:
    torch.manual_seed(0)
    clf = MultiHeadCosineClassifier(6, 4, num_heads=2, tau=16.0, gamma=1 / 32)
    x = torch.randn(5, 6)
    # per-head feature normalisation: scaling each head of x leaves the logits unchanged
    scaled = torch.cat([x[:, :3] * 10, x[:, 3:] * 0.1], dim=1)
    torch.testing.assert_close(clf(scaled), clf(x))
    # weights w/(||w|| + gamma): per-head norms below 1, approaching 1 for large w
    wn = clf.normalized_weight()
    norms = torch.stack([wn[:, :3].norm(dim=1), wn[:, 3:].norm(dim=1)], dim=1)
    raw = torch.stack([clf.weight[:, :3].norm(dim=1), clf.weight[:, 3:].norm(dim=1)], dim=1)
    torch.testing.assert_close(norms, raw / (raw + 1 / 32))
    # bounded logits: |logit| <= tau (H heads of at most tau/H each)
    with torch.no_grad():
        clf.weight.mul_(1000)
    with torch.no_grad():
        assert float(clf(x).abs().max()) <= 16.0 + 1e-4
    # a feature equal to a class direction gets nearly the maximum logit tau for that class
    with torch.no_grad():
        logit = clf(clf.weight[2:3].clone())
    assert float(logit[0, 2]) == pytest.approx(16.0, rel=1e-3)


def test_multihead_rejects_indivisible_dim_and_builder() -> None:
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadCosineClassifier(7, 3, num_heads=2)
    assert isinstance(build_classifier("linear", 8, 3), LinearClassifier)
    assert isinstance(build_classifier("multihead_cosine", 8, 3), MultiHeadCosineClassifier)


def test_linear_classifier_has_no_bias() -> None:
    clf = LinearClassifier(8, 3)
    assert [n for n, _ in clf.named_parameters()] == ["weight"]
    x = torch.randn(2, 8)
    torch.testing.assert_close(clf(x), x @ clf.weight.t())
    assert float(clf.weight.detach().std()) < 0.01  # N(0, 0.001) init as BoT
