"""What every backbone shares: attention blocks inserted after chosen blocks, kept out of the torchvision names.

The torchvision parameter names (``layer2.3.conv1.weight``, ``features.14.conv.1.0.weight``) stay untouched so that
ImageNet checkpoints load by name; inserted blocks (non-local / DNL) live under ``attention.<stage>_<index>`` and are
the only keys a torchvision checkpoint may lack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

AttentionFactory = Callable[[int], nn.Module]
ATTENTION_PREFIX = "attention."


class Backbone(nn.Module):
    """Base class: ``forward(x)`` returns the last feature map (B, out_channels, h, w).

    Subclasses set ``out_channels``, ``attention_sites`` ((stage, block index, channels) after which an attention block
    goes) and ``head_prefixes`` (the ImageNet classification head, absent when ``include_top=False``), and implement
    ``stem``, ``stages`` (the ordered (name, nn.Sequential) pairs run block by block) and ``head``.
    """

    out_channels: int
    attention_sites: tuple[tuple[str, int, int], ...] = ()
    head_prefixes: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.ModuleDict()

    def add_attention(self, factory: AttentionFactory) -> None:
        """Insert ``factory(channels)`` after every attention site (AGW placement, see the subclass)."""
        for stage, index, channels in self.attention_sites:
            self.attention[f"{stage}_{index}"] = factory(channels)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Layers before the first stage (identity by default)."""
        return x

    def stages(self) -> Sequence[tuple[str, nn.Sequential]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def head(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """The ImageNet classifier on the last feature map (only with ``include_top``)."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, then every stage block by block; an attention block follows the blocks named in its site."""
        x = self.stem(x)
        for name, stage in self.stages():
            for index, block in enumerate(stage):
                x = block(x)
                key = f"{name}_{index}"
                if key in self.attention:
                    x = self.attention[key](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (B, out_channels, h, w), or ImageNet logits when built with ``include_top``."""
        x = self.forward_features(x)
        return self.head(x) if getattr(self, "include_top", False) else x


def kaiming_init_(module: nn.Module) -> None:
    """torchvision's initialisation: conv kaiming-normal (fan_out, relu), BN weight 1 / bias 0, linear N(0, 0.01)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
