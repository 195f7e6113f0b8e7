"""ReIDModel: backbone (+ non-local / DNL) -> pooling -> BNNeck -> classifier, with the paper's optional RP and ME.

Train mode returns a dict (the losses' inputs); eval mode returns retrieval features only, so RP (Eq. 2) and the
classifiers cost nothing at inference.

The retrieval feature (``ModelConfig.retrieval_feature``):
- ``bnneck`` (bot, baseline, Table 5 rows 1-5): the BNNeck output, compared with cosine distance (BoT, fast-reid).
- ``pooled`` (ours): the global pooled feature before the BNNeck, the paper's "single-scale global pooling
  features". With ME (Eq. 6) the moving mean ``mu`` of the L2-normalised pooled features is kept during training and
  subtracted at inference: normalise(normalise(f_g) - mu). The pooled feature comes after a ReLU, so its direction
  has a large common component (||mu|| is typically 0.5-0.9) and ME changes distances; BNNeck features are centred
  per batch by BatchNorm, which is why ME is never fed them (their mean is ~0 and subtracting it does nothing).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from opreid_bench.modeling.backbones import Backbone, LoadReport, build_backbone, load_pretrained
from opreid_bench.modeling.config import ModelConfig
from opreid_bench.modeling.heads import build_classifier
from opreid_bench.modeling.layers import BNNeck, DNLBlock, MomentumElimination, NonLocalBlock, RPBranch, build_pooling

# Submodules used only for training; count_parameters(inference_only=True) leaves them out.
TRAINING_ONLY = ("classifier", "rp_branch")


class ReIDModel(nn.Module):
    """The reference ReID network of bot / baseline / ours, configured by a ModelConfig.

    Train mode ``forward(x)`` -> dict: "global_feat" (B, C, pooled, before BNNeck), "global_bn" (B, C, after BNNeck),
    "logits" (B, num_classes) when ``num_classes > 0``; with RP also "rp_feat", "rp_bn", "rp_logits". With ME the
    train-mode forward also updates the ``me.mu`` buffer (Eq. 6, no gradient) from the pooled features.
    Eval mode ``forward(x)`` -> (B, C): the retrieval feature (BNNeck or pooled, ``cfg.retrieval_feature``); with ME
    the pooled feature L2-normalised, mu removed, re-normalised. ``me_at_inference = False`` switches the subtraction
    off on the same weights, so ME's own effect is measured on one checkpoint (mu is a buffer: ME changes no weight).
    """

    def __init__(self, cfg: ModelConfig, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = int(num_classes)
        self.pretrained_report: LoadReport | None = None  # set by build_model when cfg.pretrained is loaded
        self.backbone: Backbone = build_backbone(cfg.backbone, last_stride=cfg.last_stride)
        if cfg.attention == "dnl":
            self.backbone.add_attention(partial(DNLBlock, temperature=cfg.dnl_temperature))
        elif cfg.attention == "non_local":
            self.backbone.add_attention(NonLocalBlock)
        self.feat_dim = self.backbone.out_channels
        self.pool = build_pooling(cfg.pooling)
        self.bnneck = BNNeck(self.feat_dim)
        self.classifier = self._classifier() if self.num_classes > 0 else None
        self.rp_branch = (
            RPBranch(self.feat_dim, self._classifier() if self.num_classes > 0 else None)
            if cfg.reconstructive_pooling
            else None
        )
        self.me = (
            MomentumElimination(self.feat_dim, beta=cfg.me_beta, mode=cfg.me_mode, alpha=cfg.me_alpha)
            if cfg.momentum_elimination
            else None
        )
        self.me_at_inference = True

    def _classifier(self) -> nn.Module:
        c = self.cfg
        return build_classifier(
            c.classifier, self.feat_dim, self.num_classes, num_heads=c.num_heads, tau=c.cos_tau, gamma=c.cos_gamma
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        fmap = self.backbone(x)
        global_feat = self.pool(fmap)
        global_bn = self.bnneck(global_feat)
        if not self.training:
            return self.retrieval_feature(global_feat, global_bn)
        out = {"global_feat": global_feat, "global_bn": global_bn}
        if self.classifier is not None:
            out["logits"] = self.classifier(global_bn)
        if self.rp_branch is not None:
            out.update(self.rp_branch(fmap))
        if self.me is not None:
            self.me.update(global_feat)  # ME, Eq. (6): mu_t from the features after the global pooling
        return out

    def retrieval_feature(self, global_feat: torch.Tensor, global_bn: torch.Tensor) -> torch.Tensor:
        """The inference feature: BNNeck output, or the pooled feature with mu subtracted when ME is on (Sec. 3.2)."""
        if self.cfg.retrieval_feature == "bnneck":
            return global_bn
        if self.me is not None and self.me_at_inference:
            return self.me(global_feat)  # ME at inference: normalise(f_g / ||f_g|| - mu)
        return global_feat

    @torch.no_grad()
    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """Retrieval features in eval mode, whatever the current mode (restores it afterwards)."""
        was_training = self.training
        self.eval()
        try:
            return self(x)
        finally:
            self.train(was_training)


def build_model(cfg: ModelConfig, num_classes: int) -> ReIDModel:
    """Build the model of ``cfg``; load ``cfg.pretrained`` (local torchvision checkpoint) into the backbone.

    ``num_classes`` is the number of training identities; 0 builds a feature extractor without classifiers (e.g. the
    untrained ImageNet floor). Raises ConfigError for an invalid config, CheckpointError for a bad pretrained file.
    """
    cfg.validate()
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    model = ReIDModel(cfg, num_classes)
    if cfg.pretrained:
        model.pretrained_report = load_pretrained(model.backbone, cfg.pretrained)
    return model


def count_parameters(model: nn.Module, inference_only: bool = True) -> int:
    """Number of parameters; with ``inference_only`` the training-only parts (classifiers, RP branch) are left out."""
    total = 0
    for name, p in model.named_parameters():
        if inference_only and name.split(".", 1)[0] in TRAINING_ONLY:
            continue
        total += p.numel()
    return total


__all__ = ["LoadReport", "ReIDModel", "build_model", "count_parameters"]
