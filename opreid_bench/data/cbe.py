"""Compound batch erasing (CBE), Sec. 3.2 of the paper: random erasing + batch-constant erasing on one batch.

# CBE, Sec. 3.2: X_full = [X_re; X_bce] in R^{2B×3×H×W}; RE (Zhong et al.) per image on X_re, BcE on X_bce
# BcE, Sec. 3.2: draw s ∈ {6, 7, 8}, cut H into s horizontal stripes, erase the same random stripe in every image

It works on an already normalised float batch (B, 3, H, W), on whatever device it lives on, so the erased value is
0 (= the ImageNet mean pixel, fast-reid's choice) with ``fill="mean"`` or standard-normal noise with
``fill="random"``. The sampled batch X should come from the train transform *without* its own random erasing
(``build_train_transform(random_erasing=False)``): CBE applies RE itself, to X_re only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np
import torch

from opreid_bench.data.transforms import Box, random_erasing_

__all__ = ["CBEInfo", "as_numpy_rng", "batch_constant_erasing_", "compound_batch_erasing",
           "compound_batch_erasing_with_info", "stripe_bounds"]

RngLike = np.random.Generator | torch.Generator | int


def as_numpy_rng(generator: RngLike) -> np.random.Generator:
    """A numpy Generator from a numpy Generator (returned as is), a torch.Generator (one 62-bit draw) or an int seed."""
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        return np.random.default_rng(seed)
    if isinstance(generator, (int, np.integer)):
        return np.random.default_rng(int(generator))
    raise TypeError(f"generator must be a numpy Generator, torch.Generator or int, got {type(generator).__name__}")


def stripe_bounds(height: int, num_stripes: int, index: int) -> tuple[int, int]:
    """Rows [top, bottom) of stripe ``index`` when ``height`` rows are cut into ``num_stripes`` horizontal parts.

    Stripe k covers rows floor(k·H/s) .. floor((k+1)·H/s) - 1, so the s stripes tile the image exactly.
    """
    if not 0 <= index < num_stripes:
        raise ValueError(f"stripe index {index} outside 0..{num_stripes - 1}")
    return index * height // num_stripes, (index + 1) * height // num_stripes


@dataclass
class CBEInfo:
    """What CBE erased: RE boxes of X_re (None = not erased) and the BcE stripe shared by all of X_bce."""

    num_stripes: int = 0
    stripe_index: int = 0
    stripe_rows: tuple[int, int] = (0, 0)
    re_boxes: list[Box | None] = field(default_factory=list)


def batch_constant_erasing_(
    images: torch.Tensor,
    rng: np.random.Generator,
    *,
    stripes: Sequence[int] = (6, 7, 8),
    fill: str = "mean",
) -> tuple[int, int, tuple[int, int]]:
    """BcE in place on (B, C, H, W): one stripe (same rows) erased in every image; returns (s, k, (top, bottom))."""
    if images.dim() != 4:
        raise ValueError(f"batch-constant erasing needs a (B, C, H, W) batch, got shape {tuple(images.shape)}")
    if not stripes or min(stripes) < 1:
        raise ValueError(f"stripes must be positive stripe counts, got {tuple(stripes)}")
    height = images.shape[-2]
    s = int(rng.choice(np.asarray(stripes)))
    k = int(rng.integers(0, s))
    top, bottom = stripe_bounds(height, s, k)
    if fill == "mean":
        images[:, :, top:bottom, :] = 0.0
    elif fill == "random":
        shape = (images.shape[0], images.shape[1], bottom - top, images.shape[-1])
        noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        images[:, :, top:bottom, :] = noise.to(device=images.device, dtype=images.dtype)
    else:
        raise ValueError(f"erasing fill must be 'mean' or 'random', got {fill!r}")
    return s, k, (top, bottom)


def _cbe(
    images: torch.Tensor,
    generator: RngLike,
    re_prob: float,
    re_area: tuple[float, float],
    re_aspect: float,
    stripes: Sequence[int],
    fill: str,
) -> tuple[torch.Tensor, CBEInfo]:
    if images.dim() != 4:
        raise ValueError(f"CBE needs a (B, C, H, W) batch, got shape {tuple(images.shape)}")
    rng = as_numpy_rng(generator)
    batch = images.shape[0]
    full = torch.cat([images, images], dim=0)  # [X_re; X_bce], a fresh tensor: the input is left untouched
    info = CBEInfo()
    for i in range(batch):  # RE on X_re, one independent draw per image
        info.re_boxes.append(random_erasing_(full[i], rng, prob=re_prob, area=re_area, aspect=re_aspect, fill=fill))
    s, k, rows = batch_constant_erasing_(full[batch:], rng, stripes=stripes, fill=fill)
    info.num_stripes, info.stripe_index, info.stripe_rows = s, k, rows
    return full, info


@overload
def compound_batch_erasing(
    images: torch.Tensor,
    pids: torch.Tensor,
    generator: RngLike,
    *,
    camids: None = None,
    re_prob: float = ...,
    re_area: tuple[float, float] = ...,
    re_aspect: float = ...,
    stripes: Sequence[int] = ...,
    fill: str = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...


@overload
def compound_batch_erasing(
    images: torch.Tensor,
    pids: torch.Tensor,
    generator: RngLike,
    *,
    camids: torch.Tensor,
    re_prob: float = ...,
    re_area: tuple[float, float] = ...,
    re_aspect: float = ...,
    stripes: Sequence[int] = ...,
    fill: str = ...,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


def compound_batch_erasing(
    images: torch.Tensor,
    pids: torch.Tensor,
    generator: RngLike,
    *,
    camids: torch.Tensor | None = None,
    re_prob: float = 0.5,
    re_area: tuple[float, float] = (0.02, 0.4),
    re_aspect: float = 0.3,
    stripes: Sequence[int] = (6, 7, 8),
    fill: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CBE, Sec. 3.2: (B, 3, H, W) batch -> ([X_re; X_bce] of 2B images, pids duplicated [pids; pids]).

    With ``camids`` given it returns (images_2B, pids_2B, camids_2B). The same generator state gives the same
    erasing; the input tensor is not modified.
    """
    if pids.shape[0] != images.shape[0]:
        raise ValueError(f"CBE: {images.shape[0]} images but {pids.shape[0]} pids")
    full, _ = _cbe(images, generator, re_prob, tuple(re_area), re_aspect, stripes, fill)  # type: ignore[arg-type]
    pids2 = torch.cat([pids, pids], dim=0)
    if camids is None:
        return full, pids2
    if camids.shape[0] != images.shape[0]:
        raise ValueError(f"CBE: {images.shape[0]} images but {camids.shape[0]} camids")
    return full, pids2, torch.cat([camids, camids], dim=0)


def compound_batch_erasing_with_info(
    images: torch.Tensor,
    generator: RngLike,
    *,
    re_prob: float = 0.5,
    re_area: tuple[float, float] = (0.02, 0.4),
    re_aspect: float = 0.3,
    stripes: Sequence[int] = (6, 7, 8),
    fill: str = "mean",
) -> tuple[torch.Tensor, CBEInfo]:
    """CBE on the images alone, also returning what was erased (for tests, visualisation and logs)."""
    return _cbe(images, generator, re_prob, tuple(re_area), re_aspect, stripes, fill)  # type: ignore[arg-type]
