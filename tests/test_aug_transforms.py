"""Train/test transforms: shapes, normalisation, determinism per seed, random-erasing bounds (Zhong et al.)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from opreid_bench.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_test_transform,
    build_train_transform,
    random_erasing_,
    sample_erasing_box,
)


def _image(w: int = 50, h: int = 140, seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def test_test_transform_shape_and_normalisation() -> None:
    img = Image.new("RGB", (40, 90), color=(255, 0, 128))
    x = build_test_transform(64, 32)(img)
    assert x.shape == (3, 64, 32) and x.dtype == torch.float32
    expected = [(v / 255.0 - m) / s for v, m, s in zip((255, 0, 128), IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    assert torch.allclose(x.mean(dim=(1, 2)), torch.tensor(expected), atol=1e-5)


def test_train_transform_deterministic_per_seed() -> None:
    img = _image()
    t = build_train_transform(64, 32, padding=4)
    a = t(img, np.random.default_rng(7))
    b = t(img, np.random.default_rng(7))
    c = t(img, np.random.default_rng(8))
    assert a.shape == (3, 64, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the transform's own generator is seeded at build time: two builds with one seed give the same stream
    t1, t2 = build_train_transform(64, 32, seed=3), build_train_transform(64, 32, seed=3)
    assert all(torch.equal(t1(img), t2(img)) for _ in range(3))


def test_flip_only_mirrors() -> None:
    img = _image(32, 64)
    base = build_test_transform(64, 32)(img)
    t = build_train_transform(64, 32, flip_p=1.0, padding=0, random_erasing=False)
    assert torch.equal(t(img, np.random.default_rng(0)), base.flip(-1))
    t0 = build_train_transform(64, 32, flip_p=0.0, padding=0, random_erasing=False)
    assert torch.equal(t0(img, np.random.default_rng(0)), base)


def test_pad_crop_is_a_shifted_window() -> None:
    img = _image(32, 64)
    base = build_test_transform(64, 32)(img)
    t = build_train_transform(64, 32, flip_p=0.0, padding=5, random_erasing=False)
    zero = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]).view(3, 1, 1)
    for seed in range(10):
        x = t(img, np.random.default_rng(seed))
        padded = torch.cat([zero.expand(3, 64, 5), base, zero.expand(3, 64, 5)], dim=2)
        padded = torch.cat([zero.expand(3, 5, 42), padded, zero.expand(3, 5, 42)], dim=1)
        hits = [
            (i, j) for i in range(11) for j in range(11) if torch.allclose(padded[:, i : i + 64, j : j + 32], x)
        ]
        assert hits, f"seed {seed}: crop is not a window of the zero-padded image"


def test_erasing_box_area_and_aspect_bounds() -> None:
    rng = np.random.default_rng(0)
    h_img, w_img = 256, 128
    full = h_img * w_img
    areas, ratios = [], []
    for _ in range(2000):
        box = sample_erasing_box(h_img, w_img, rng, area=(0.02, 0.4), aspect=0.3)
        if box is None:
            continue
        top, left, h, w = box
        assert top >= 0 and top + h <= h_img and left >= 0 and left + w <= w_img
        # h = round(sqrt(S*r)), w = round(sqrt(S/r)) with S in [0.02, 0.4]*H*W and r in [0.3, 1/0.3]:
        # undoing the rounding (±0.5 px per side) must land inside those bounds
        assert (h - 0.5) * (w - 0.5) <= 0.4 * full and (h + 0.5) * (w + 0.5) >= 0.02 * full
        assert (h - 0.5) / (w + 0.5) <= 1 / 0.3 and (h + 0.5) / (w - 0.5) >= 0.3
        areas.append(h * w / full)
        ratios.append(h / w)
    assert len(areas) > 1500
    # the draws cover the whole range, not just a corner of it
    assert min(areas) < 0.03 and max(areas) > 0.3
    assert min(ratios) < 0.4 and max(ratios) > 2.5


def test_random_erasing_fills_mean_with_probability() -> None:
    rng = np.random.default_rng(1)
    erased = 0
    for _ in range(400):
        x = torch.ones(3, 64, 32)
        box = random_erasing_(x, rng, prob=0.5)
        if box is None:
            assert torch.all(x == 1)
            continue
        erased += 1
        top, left, h, w = box
        assert torch.all(x[:, top : top + h, left : left + w] == 0)
        assert int((x == 0).sum()) == 3 * h * w
    assert 150 < erased < 250  # p = 0.5


def test_random_fill_option() -> None:
    x = torch.ones(3, 64, 32)
    box = random_erasing_(x, np.random.default_rng(2), prob=1.0, fill="random")
    assert box is not None
    top, left, h, w = box
    patch = x[:, top : top + h, left : left + w]
    assert not torch.all(patch == 1) and patch.std() > 0.5


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        build_train_transform(64, 32, re_fill="zeros")
    with pytest.raises(ValueError):
        sample_erasing_box(10, 10, np.random.default_rng(0), area=(0.5, 0.1))


def test_padded_crop_and_normalisation_equal_the_plain_forms() -> None:
    from opreid_bench.data.transforms import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        _normalised_chw,
        _padded_crop,
        normalize_,
        pil_to_tensor,
    )

    arr = np.random.default_rng(0).integers(0, 256, size=(12, 6, 3), dtype=np.uint8)
    for src in (arr, arr[:, ::-1]):  # also a mirrored (non-contiguous) view, as after the flip
        padded = np.pad(src, ((4, 4), (4, 4), (0, 0)))
        for top in range(9):
            for left in range(9):
                assert np.array_equal(_padded_crop(src, 4, top, left), padded[top : top + 12, left : left + 6])
    mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)
    std = np.asarray(IMAGENET_STD, np.float32).reshape(3, 1, 1)
    fast = torch.from_numpy(_normalised_chw(arr, mean, std))
    assert fast.is_contiguous() and torch.equal(fast, normalize_(pil_to_tensor(Image.fromarray(arr))))
