"""CBE (Sec. 3.2): batch-constant stripe shared by all of X_bce, stripe bounds, RE on X_re, label bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opreid_bench.data.cbe import (
    batch_constant_erasing_,
    compound_batch_erasing,
    compound_batch_erasing_with_info,
    stripe_bounds,
)


def _batch(b: int = 6, h: int = 64, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g) + 5.0  # offset: no pixel is 0 before erasing


@pytest.mark.parametrize("s", [6, 7, 8])
@pytest.mark.parametrize("height", [256, 64, 50])
def test_stripe_bounds_tile_the_height(s: int, height: int) -> None:
    rows = [stripe_bounds(height, s, k) for k in range(s)]
    assert rows[0][0] == 0 and rows[-1][1] == height
    for (t0, b0), (t1, _) in zip(rows, rows[1:], strict=False):
        assert b0 == t1 and b0 > t0
    sizes = [b - t for t, b in rows]
    assert max(sizes) - min(sizes) <= 1  # near-equal parts: floor(H/s) or ceil(H/s) rows


def test_bce_erases_same_rows_in_every_image() -> None:
    for seed in range(30):
        x = _batch(seed=seed)
        s, k, (top, bottom) = batch_constant_erasing_(x, np.random.default_rng(seed))
        assert s in (6, 7, 8) and 0 <= k < s
        assert (top, bottom) == (k * 64 // s, (k + 1) * 64 // s)
        zero_rows = (x == 0).all(dim=3).all(dim=1)  # (B, H): row fully erased in all channels
        assert torch.all(zero_rows[:, top:bottom])
        assert not zero_rows[:, :top].any() and not zero_rows[:, bottom:].any()
        assert int((x == 0).sum()) == x.shape[0] * 3 * (bottom - top) * 32


def test_bce_draws_every_stripe_count_and_index() -> None:
    rng = np.random.default_rng(0)
    seen = {(s, k) for s, k, _ in (batch_constant_erasing_(_batch(b=1), rng) for _ in range(600))}
    assert {s for s, _ in seen} == {6, 7, 8}
    assert seen == {(s, k) for s in (6, 7, 8) for k in range(s)}


def test_cbe_layout_and_labels() -> None:
    x = _batch(b=5)
    pids = torch.tensor([3, 3, 9, 9, 1])
    camids = torch.tensor([0, 1, 0, 2, 1])
    x_copy = x.clone()
    full, pids2, camids2 = compound_batch_erasing(x, pids, torch.Generator().manual_seed(4), camids=camids)
    assert full.shape == (10, 3, 64, 32)
    assert torch.equal(x, x_copy)  # input untouched
    assert pids2.tolist() == [3, 3, 9, 9, 1, 3, 3, 9, 9, 1]
    assert camids2.tolist() == [0, 1, 0, 2, 1, 0, 1, 0, 2, 1]
    out2 = compound_batch_erasing(x, pids, torch.Generator().manual_seed(4))
    assert len(out2) == 2 and torch.equal(out2[0], full) and torch.equal(out2[1], pids2)
    # every erased pixel is 0 and everything else is the original image
    dup = torch.cat([x, x])
    assert torch.equal(torch.where(full == 0, dup, full), dup)


def test_cbe_re_half_and_bce_half() -> None:
    x = _batch(b=8, h=96, w=48)
    full, info = compound_batch_erasing_with_info(x, np.random.default_rng(11), re_prob=1.0)
    top, bottom = info.stripe_rows
    assert (top, bottom) == stripe_bounds(96, info.num_stripes, info.stripe_index)
    for i in range(8):
        # X_re: exactly its own RE box is erased
        box = info.re_boxes[i]
        assert box is not None
        t, left, h, w = box
        mask = torch.zeros(96, 48, dtype=torch.bool)
        mask[t : t + h, left : left + w] = True
        assert torch.equal((full[i] == 0).all(dim=0), mask)
        # X_bce: exactly the shared stripe is erased
        rows = torch.zeros(96, 48, dtype=torch.bool)
        rows[top:bottom] = True
        assert torch.equal((full[8 + i] == 0).all(dim=0), rows)
    boxes = {b for b in info.re_boxes}
    assert len(boxes) > 1  # RE draws per image, BcE once per batch


def test_cbe_deterministic_per_seed() -> None:
    x = _batch(b=4)
    pids = torch.arange(4)
    a, _ = compound_batch_erasing(x, pids, torch.Generator().manual_seed(1))
    b, _ = compound_batch_erasing(x, pids, torch.Generator().manual_seed(1))
    c, _ = compound_batch_erasing(x, pids, np.random.default_rng(1))
    d, _ = compound_batch_erasing(x, pids, np.random.default_rng(1))
    assert torch.equal(a, b) and torch.equal(c, d)
    diffs = {bool(torch.equal(compound_batch_erasing(x, pids, s)[0], a)) for s in range(2, 8)}
    assert False in diffs


def test_cbe_rejects_mismatched_labels() -> None:
    with pytest.raises(ValueError, match="pids"):
        compound_batch_erasing(_batch(b=3), torch.arange(4), 0)
