"""Identity classifiers: BoT's linear layer and the multi-head cosine classifier (L_c)."""

from __future__ import annotations

from torch import nn

from opreid_bench.modeling.heads.linear import LinearClassifier
from opreid_bench.modeling.heads.multihead_cosine import MultiHeadCosineClassifier


def build_classifier(
    kind: str, in_dim: int, num_classes: int, *, num_heads: int = 2, tau: float = 16.0, gamma: float = 1.0 / 32
) -> nn.Module:
    """Classifier by name: ``linear`` -> LinearClassifier, ``multihead_cosine`` -> MultiHeadCosineClassifier."""
    if kind.lower() == "multihead_cosine":
        return MultiHeadCosineClassifier(in_dim, num_classes, num_heads=num_heads, tau=tau, gamma=gamma)
    return LinearClassifier(in_dim, num_classes)


__all__ = ["LinearClassifier", "MultiHeadCosineClassifier", "build_classifier"]
