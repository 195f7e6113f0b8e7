"""ModelConfig: every switch of the reference models (bot, baseline, ours) as one typed, validated dataclass.

The engine loads it from the ``model:`` section of ``baselines/<method>.yaml``; ``build_model`` turns it into a
``ReIDModel``. Defaults are the paper's (Sec. 3, Sec. 5.1) and, where the paper is silent, fast-reid's strong baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from opreid_bench.errors import ConfigError

BACKBONE_NAMES = ("resnet50", "mobilenetv2", "resnet_mini")
# The feature dimension each backbone gives (its out_channels; tested against the built backbones): the multi-head
# classifier splits it into model.num_heads equal parts, which a config must allow before any training starts.
BACKBONE_FEATURE_DIMS = {"resnet50": 2048, "mobilenetv2": 1280, "resnet_mini": 512}
POOLINGS = ("avg", "gem")
CLASSIFIERS = ("linear", "multihead_cosine")
ME_MODES = ("subtract", "tde")
RETRIEVAL_FEATURES = ("bnneck", "pooled")


@dataclass
class ModelConfig:
    """Architecture switches; each paper component (DNL, RP, multi-head classifier, ME) is one flag.

    ``dnl`` replaces ``non_local`` when both are set (ours = baseline + DNL in place of the non-local blocks).
    """

    backbone: str = "resnet50"  # "resnet50" | "mobilenetv2" | "resnet_mini" (compact, from scratch)
    pretrained: str | None = None  # local torchvision checkpoint path (never a download)
    last_stride: int = 1  # 1 for ReID (BoT), 2 = ImageNet layout
    pooling: str = "gem"  # "avg" | "gem" (GeM, learnable p, init 3)
    non_local: bool = False  # non-local blocks, AGW placement
    dnl: bool = False  # DNL blocks, Eq. (1), same placement; replaces non_local
    dnl_temperature: float = 0.05
    reconstructive_pooling: bool = False  # RP, Eq. (2): training-only branch
    classifier: str = "linear"  # "linear" | "multihead_cosine" (L_c)
    num_heads: int = 2
    cos_tau: float = 16.0
    cos_gamma: float = 0.03125
    retrieval_feature: str = "bnneck"  # "bnneck" (BoT, fast-reid) | "pooled" (the paper's inference feature)
    momentum_elimination: bool = False  # ME, Eq. (6): mu from the pooled feature; needs retrieval_feature=pooled
    me_beta: float = 0.9
    me_mode: str = "subtract"  # "subtract" | "tde"
    me_alpha: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    @property
    def attention(self) -> str | None:
        """Which attention block goes into the backbone: "dnl", "non_local" or None."""
        if self.dnl:
            return "dnl"
        if self.non_local:
            return "non_local"
        return None

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field (called on construction and again by build_model)."""

        def choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
            if not isinstance(value, str) or value.lower() not in allowed:
                raise ConfigError(f"model.{name}={value!r} is invalid; choose one of {', '.join(allowed)}")

        choice("backbone", self.backbone, BACKBONE_NAMES)
        choice("pooling", self.pooling, POOLINGS)
        choice("classifier", self.classifier, CLASSIFIERS)
        choice("me_mode", self.me_mode, ME_MODES)
        choice("retrieval_feature", self.retrieval_feature, RETRIEVAL_FEATURES)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise ConfigError(f"model.{f.name}={value!r} must be true or false")
        if self.pretrained is not None and not isinstance(self.pretrained, str):
            raise ConfigError(f"model.pretrained={self.pretrained!r} must be a file path or null")
        if self.last_stride not in (1, 2):
            raise ConfigError(f"model.last_stride={self.last_stride!r} must be 1 or 2")
        if not isinstance(self.num_heads, int) or self.num_heads < 1:
            raise ConfigError(f"model.num_heads={self.num_heads!r} must be a positive integer")
        dim = BACKBONE_FEATURE_DIMS[self.backbone.lower()]
        if self.classifier.lower() == "multihead_cosine" and dim % self.num_heads:
            fits = [n for n in range(1, 17) if dim % n == 0]
            raise ConfigError(f"model.num_heads={self.num_heads} must divide the {self.backbone} feature dimension "
                              f"{dim} (the heads split it equally; e.g. {', '.join(map(str, fits))})")
        for name in ("dnl_temperature", "cos_tau", "cos_gamma", "me_alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"model.{name}={value!r} must be a positive number")
        if not isinstance(self.me_beta, (int, float)) or not 0.0 <= self.me_beta < 1.0:
            raise ConfigError(f"model.me_beta={self.me_beta!r} must be in [0, 1)")
        if self.momentum_elimination and self.retrieval_feature != "pooled":
            # Sec. 3.2, ME paragraph: "The mean feature vector is obtained from the features after the global pooling", and
            # inference uses "the single-scale global pooling features (subtracting the mean features)".
            raise ConfigError("model.momentum_elimination=true needs model.retrieval_feature=pooled: ME (Eq. 6) "
                              "keeps the mean of the pooled feature and subtracts it from that feature")
