"""The training objective, composed from the loss modules per method.

bot / baseline: CE with label smoothing on the BNNeck logits + batch-hard triplet on the pooled feature (BoT).
ours, Eq. (5): L = L_bed^rpf + L_bed^gf + L_c  -- BED on the global and the reconstructive-pooling feature plus the
(multi-head) identity loss, which Figure 2 applies to both branches.
"""

from __future__ import annotations

import torch
from torch import nn

from opreid_bench.engine.config import LossConfig

# model output keys of each feature branch: (pooled feature before the BNNeck, classifier logits)
BRANCH_KEYS = {"global": ("global_feat", "logits"), "rp": ("rp_feat", "rp_logits")}


class ReIDCriterion(nn.Module):
    """Weighted sum of the enabled losses over the enabled branches; returns the total and each named part.

    A branch listed in ``ce_on``/``metric_on`` whose outputs the model does not produce (``rp`` without RP) is
    skipped, so one loss section serves every row of the ablation.
    """

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        from opreid_bench.modeling.losses import BEDLoss, CrossEntropyLabelSmooth, TripletLoss

        self.cfg = cfg
        self.ce = CrossEntropyLabelSmooth(eps=cfg.label_smoothing) if cfg.ce else None
        self.triplet = TripletLoss(margin=cfg.triplet_margin) if cfg.triplet else None
        self.bed = (
            BEDLoss(alpha=cfg.bed_alpha, mining=cfg.bed_mining, normalize=cfg.bed_normalize) if cfg.bed else None
        )

    def forward(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        total = torch.zeros((), device=targets.device)
        parts: dict[str, float] = {}
        for branch, (feat_key, logit_key) in BRANCH_KEYS.items():
            if feat_key not in outputs:
                continue
            feat = outputs[feat_key].float()
            if self.ce is not None and branch in cfg.ce_on:
                loss = self.ce(outputs[logit_key].float(), targets)  # identity loss L_c (multi-head logits summed)
                total = total + cfg.ce_weight * loss
                parts[f"ce_{branch}"] = float(loss.detach())
            if self.triplet is not None and branch in cfg.metric_on:
                loss = self.triplet(feat, targets)  # batch-hard triplet, margin 0.3 (BoT)
                total = total + cfg.triplet_weight * loss
                parts[f"triplet_{branch}"] = float(loss.detach())
            if self.bed is not None and branch in cfg.metric_on:
                loss = self.bed(feat, targets)  # BED loss, Eq. (3), on the pooled feature; Eq. (5) sums branches
                total = total + cfg.bed_weight * loss
                parts[f"bed_{branch}"] = float(loss.detach())
        parts["loss"] = float(total.detach())
        return total, parts


def accuracy(outputs: dict[str, torch.Tensor], targets: torch.Tensor) -> float:
    """Top-1 training accuracy of the global classifier (a progress signal)."""
    logits = outputs.get("logits")
    if logits is None:
        return float("nan")
    return float((logits.argmax(dim=1) == targets).float().mean())
