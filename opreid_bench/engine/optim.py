"""Optimiser and learning-rate schedule of BoT / fast-reid: Adam, linear warm-up, step decay (per epoch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from opreid_bench.engine.config import OptimConfig


@dataclass
class WarmupMultiStep:
    """lr factor at ``epoch``: linear warm-up from ``warmup_factor`` to 1 over ``warmup_epochs``, then × ``gamma``
    at each milestone (BoT: 3.5e-5 → 3.5e-4 over 10 epochs, ×0.1 at 40 and 70).

    A dataclass rather than a lambda so that the scheduler's state (and hence ``--resume``) pickles cleanly.
    """

    warmup_epochs: int
    warmup_factor: float
    milestones: Sequence[int]
    gamma: float

    def __call__(self, epoch: int) -> float:
        decay = self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        if epoch < self.warmup_epochs:
            alpha = epoch / self.warmup_epochs
            return (self.warmup_factor * (1.0 - alpha) + alpha) * decay
        return decay


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam (default) or SGD over the trainable parameters, one group, weight decay on all (as BoT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum, nesterov=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch schedule: call ``scheduler.step()`` once after each epoch."""
    rule = WarmupMultiStep(cfg.warmup_epochs, cfg.warmup_factor, tuple(cfg.milestones), cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=rule)


def scaled_schedule(epochs: int, reference_epochs: int = 120, warmup: int = 10,
                    milestones: Sequence[int] = (40, 70)) -> dict[str, object]:
    """The 120-epoch schedule squeezed into ``epochs`` (warm-up and milestones at the same fractions).

    Used by short CPU budgets (``benchmarks/reproduce_cpu.py``): returns ``{"warmup_epochs", "milestones"}``.
    """
    scale = epochs / reference_epochs
    ms = [m for m in sorted({max(1, round(m * scale)) for m in milestones}) if m < epochs]
    return {"warmup_epochs": min(max(0, round(warmup * scale)), max(epochs - 1, 0)), "milestones": ms}


def short_schedule(epochs: int) -> dict[str, object]:
    """A schedule for short budgets that leaves most epochs at the full rate (same shape for every method).

    The 120-epoch schedule squeezed into 5 epochs drops the rate after two epochs, too early for zero-initialised
    non-local/DNL blocks and GeM to train: that measures the budget, not the method. Here: one warm-up epoch (10 %
    of the budget at most), x0.1 at 60 % and again at 85 % of the epochs.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    warmup = min(max(1, round(0.1 * epochs)), max(epochs - 1, 0))
    ms = [m for m in sorted({max(warmup + 1, round(f * epochs)) for f in (0.6, 0.85)}) if m < epochs]
    return {"warmup_epochs": warmup, "milestones": ms}
