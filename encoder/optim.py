"""Optimiser parameter groups and the learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, extra_lr: dict | None = None, base_lr: float = 1e-3,
                 decay_all: bool = False):
    """AdamW groups: weight decay on weight matrices and kernels only (not biases, norms or the
    temperature), or on every parameter (``decay_all``, the AnyPPG release's one group).
    ``extra_lr`` maps a name prefix to its own learning rate."""
    groups: dict = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = decay_all or (p.ndim >= 2 and "logit_scale" not in name)
        lr = base_lr
        for prefix, value in (extra_lr or {}).items():
            if name.startswith(prefix):
                lr = value
        key = (decay, lr)
        groups.setdefault(key, {"params": [], "weight_decay": weight_decay if decay else 0.0, "lr": lr})
        groups[key]["params"].append(p)
    return list(groups.values())


def warmup_cosine(optimizer, warmup: int, total: int, floor: float = 0.0):
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``floor`` x the peak at ``total``."""
    def f(step):
        if step < warmup:
            return (step + 1) / max(1, warmup)
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def release_cosine(optimizer, warmup_ticks: int, total_ticks: int, ticks_per_step: int = 1):
    """The AnyPPG release's schedule: ``transformers.get_scheduler("cosine", num_warmup_steps,
    num_training_steps)``, ``lambda(t) = t / warmup`` then ``0.5 (1 + cos(pi progress))`` (the
    first step at a learning rate of 0), wrapped by accelerate, which advances it
    ``ticks_per_step`` times per optimiser step (once per process): optimiser step ``s`` runs at
    ``lambda(s * ticks_per_step)``."""
    def f(step):
        t = step * ticks_per_step
        if t < warmup_ticks:
            return t / max(1, warmup_ticks)
        progress = (t - warmup_ticks) / max(1, total_ticks - warmup_ticks)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)
