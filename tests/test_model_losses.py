"""Losses: BED (Eq. 3) against a pair loop, its bounds (Eq. 4) and gradient signs; batch-hard triplet; label-smooth CE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from opreid_bench.modeling.losses import BEDLoss, CrossEntropyLabelSmooth, TripletLoss


def _batch(seed: int = 0, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(8, 5, generator=g, dtype=torch.float64) * scale
    targets = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    return feats, targets


@torch.no_grad()
def bed_reference(feats: torch.Tensor, targets: torch.Tensor, alpha: float, mining: str) -> float:
    n = len(targets)
    d = [[math.dist(feats[i].tolist(), feats[j].tolist()) for j in range(n)] for i in range(n)]
    same = [[int(targets[i]) == int(targets[j]) for j in range(n)] for i in range(n)]
    if mining == "all":
        pos = [1 - math.exp(-alpha * d[i][j]) for i in range(n) for j in range(n) if i != j and same[i][j]]
        neg = [math.exp(-alpha * d[i][j]) for i in range(n) for j in range(n) if not same[i][j]]
    else:
        pos = [1 - math.exp(-alpha * max(d[i][j] for j in range(n) if j != i and same[i][j])) for i in range(n)]
        neg = [math.exp(-alpha * min(d[i][j] for j in range(n) if not same[i][j])) for i in range(n)]
    return sum(pos) / len(pos) + sum(neg) / len(neg)


@pytest.mark.parametrize("mining", ["all", "hard"])
def test_bed_matches_pair_loop(mining: str) -> None:
    feats, targets = _batch()
    loss = BEDLoss(alpha=0.3, mining=mining, normalize=False)(feats, targets)
    assert float(loss) == pytest.approx(bed_reference(feats, targets, 0.3, mining), rel=1e-6)
    normed = torch.nn.functional.normalize(feats, dim=1)
    loss_n = BEDLoss(alpha=0.3, mining=mining, normalize=True)(feats, targets)
    assert float(loss_n) == pytest.approx(bed_reference(normed, targets, 0.3, mining), rel=1e-6)


def test_bed_bounds_eq4() -> None:
    bed = BEDLoss(alpha=0.3, normalize=False)
    d = torch.tensor([0.0, 1.0, 10.0, 1e3])
    pos, neg = bed.pair_loss(d, True), bed.pair_loss(d, False)
    assert torch.all((pos >= 0) & (pos <= 1)) and torch.all((neg >= 0) & (neg <= 1))
    # Eq. (4): d -> inf gives 1 for positive pairs and 0 for negative pairs; d = 0 the other way round
    assert float(pos[-1]) == pytest.approx(1.0) and float(neg[-1]) == pytest.approx(0.0)
    assert float(pos[0]) == 0.0 and float(neg[0]) == 1.0
    assert torch.all(pos[1:] > pos[:-1]) and torch.all(neg[1:] < neg[:-1])
    # whole-batch loss lies in [0, 2] whatever the feature scale
    feats, targets = _batch()
    for scale in (1e-3, 1.0, 1e3):
        assert 0.0 <= float(bed(feats * scale, targets)) <= 2.0
    # far apart identities and collapsed identities: the loss tends to its bounds
    centres = torch.eye(4, dtype=torch.float64).repeat_interleave(2, dim=0) * 1e4
    assert float(bed(centres, targets)) == pytest.approx(0.0, abs=1e-6)


def test_bed_gradient_signs() -> None:
    """A gradient step pulls positive pairs together and pushes negative pairs apart."""
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    BEDLoss(alpha=0.3, normalize=False)(a, torch.tensor([0, 0])).backward()
    # d/da0 of (1 - e^{-alpha d}) points away from a1: descending moves a0 towards a1
    assert a.grad[0, 0] < 0 and a.grad[1, 0] > 0
    b = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    BEDLoss(alpha=0.3, normalize=False)(b, torch.tensor([0, 1])).backward()
    assert b.grad[0, 0] > 0 and b.grad[1, 0] < 0  # descending moves them apart
    # on a whole batch: one SGD step shrinks positive distances and grows negative ones (raw and normalised d)
    for normalize in (False, True):
        feats, targets = _batch(seed=3, scale=1.0)
        feats.requires_grad_(True)
        BEDLoss(alpha=0.3, normalize=normalize)(feats, targets).backward()
        stepped = (feats - 0.5 * feats.grad).detach()
        space = (lambda t: F.normalize(t, dim=1)) if normalize else (lambda t: t)
        before, after = torch.cdist(space(feats.detach()), space(feats.detach())), torch.cdist(space(stepped), space(stepped))
        same = targets[:, None] == targets[None, :]
        eye = torch.eye(8, dtype=torch.bool)
        assert after[same & ~eye].mean() < before[same & ~eye].mean()
        assert after[~same].mean() > before[~same].mean()


def test_bed_default_normalizes_so_it_does_not_saturate_on_raw_feature_scales() -> None:
    feats, targets = _batch(scale=1.0)
    bed = BEDLoss()
    assert bed.normalize
    torch.testing.assert_close(bed(feats * 50, targets), bed(feats, targets))
    # raw pooled features have norms of tens: unnormalised, BED saturates (loss -> 1, gradient -> 0)
    big = (feats * 50).requires_grad_(True)
    BEDLoss(normalize=False)(big, targets).backward()
    small = (feats * 50).requires_grad_(True)
    bed(small, targets).backward()
    assert float(big.grad.abs().max()) < 1e-3 * float(small.grad.abs().max())


def test_bed_averages_pair_types_separately_and_rejects_bad_args() -> None:
    # 2 ordered positive pairs and 4 ordered negative pairs: each pair type is averaged on its own
    feats = torch.tensor([[0.0], [1.0], [5.0]], dtype=torch.float64)
    targets = torch.tensor([0, 0, 1])
    expected = (1 - math.exp(-0.3)) + (2 * math.exp(-0.3 * 5) + 2 * math.exp(-0.3 * 4)) / 4
    assert float(BEDLoss(alpha=0.3, normalize=False)(feats, targets)) == pytest.approx(expected)
    single = BEDLoss(normalize=False)(feats, torch.tensor([0, 0, 0]))  # no negatives: positive term only
    assert float(single) > 0
    with pytest.raises(ValueError):
        BEDLoss(mining="semi")
    with pytest.raises(ValueError):
        BEDLoss(alpha=0)


@torch.no_grad()
def triplet_reference(feats: torch.Tensor, targets: torch.Tensor, margin: float) -> float:
    n = len(targets)
    losses = []
    for i in range(n):
        dp = max(math.dist(feats[i].tolist(), feats[j].tolist()) for j in range(n) if targets[j] == targets[i])
        dn = min(math.dist(feats[i].tolist(), feats[j].tolist()) for j in range(n) if targets[j] != targets[i])
        losses.append(max(0.0, dp - dn + margin))
    return sum(losses) / n


def test_triplet_batch_hard_matches_reference() -> None:
    feats, targets = _batch(scale=0.3)
    loss = TripletLoss(margin=0.3)(feats, targets)
    assert float(loss) == pytest.approx(triplet_reference(feats, targets, 0.3), rel=1e-6)
    assert float(loss) > 0
    same_id = TripletLoss()(feats.requires_grad_(True), torch.zeros(8, dtype=torch.long))
    assert float(same_id.detach()) == 0.0 and same_id.requires_grad


def test_cross_entropy_label_smooth() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 6, dtype=torch.float64)
    targets = torch.tensor([0, 3, 5, 3])
    eps = 0.1
    logp = logits.log_softmax(dim=1)
    expected = sum(
        -(1 - eps) * logp[i, targets[i]] - eps / 6 * logp[i].sum() for i in range(4)
    ) / 4
    got = CrossEntropyLabelSmooth(eps)(logits, targets)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    plain = CrossEntropyLabelSmooth(0.0)(logits, targets)
    assert float(plain) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, targets)), rel=1e-6)
