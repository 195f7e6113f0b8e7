"""`visualize --attention --attention-map rp`: the reconstructive-pooling mask softmax(W^m F) of Eq. 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from opreid_bench.errors import OpreidError
from opreid_bench.modeling.layers import RPBranch


class _TinyRP(nn.Module):
    def __init__(self, with_rp: bool = True) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.rp_branch = RPBranch(4, None) if with_rp else None


def _picture(tmp_path: Path) -> Path:
    img = tmp_path / "x.png"
    pixels = np.zeros((32, 16, 3), dtype=np.uint8)
    pixels[:16] = 255  # bright top half
    Image.fromarray(pixels).save(img)
    return img


def test_rp_mask_follows_w_m_and_sums_like_a_softmax(tmp_path: Path) -> None:
    from opreid_bench.visualize.attention import RPAttention

    model = _TinyRP()
    with torch.no_grad():
        model.backbone[0].weight.fill_(1.0)
        model.backbone[0].bias.zero_()
        model.rp_branch.pool.mask.weight.fill_(1.0)  # W^m scores bright positions high
    att = RPAttention(model, 32, 16).for_crop(_picture(tmp_path))
    assert att.shape == (32, 16) and att.max() == pytest.approx(1.0)
    assert att[1:14, 1:15].min() > 0.99 and att[18:].max() < 1e-3  # (the border sees the zero padding)
    with torch.no_grad():
        model.rp_branch.pool.mask.weight.fill_(-1.0)  # the opposite W^m looks at the dark half
    flipped = RPAttention(model, 32, 16).for_crop(_picture(tmp_path))
    assert flipped[18:31, 1:15].min() > 0.99 and flipped[:14].max() < 1e-3


def test_a_model_without_rp_is_refused() -> None:
    from opreid_bench.visualize.attention import RPAttention

    with pytest.raises(OpreidError, match="reconstructive pooling"):
        RPAttention(_TinyRP(with_rp=False), 32, 16)
