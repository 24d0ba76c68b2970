"""Pretraining objectives, one record each (:data:`OBJECTIVES`): how the model is built around the
PPG encoder, the loss of a micro-batch, what follows each optimiser step, and what the finished
run measures.

* ``clip`` (AnyPPG): the PPG tower against the paired ECG's (:mod:`encoder.clip`);
* ``simclr``, ``byol``: PPG alone, two augmented views of each window (:mod:`encoder.ssl`), the
  paper's baselines.

Features are computed under autocast; losses are computed from them in float32 outside it, so
that a bf16 matrix product never rounds the logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .clip import PPGECGClip, clip_loss
from .distributed import autocast
from .ssl import BYOL, SimCLR, byol_loss, nt_xent, two_views


@dataclass(frozen=True)
class Objective:
    """``build(ppg_encoder, cfg, ecg_encoder, ecg_dim)`` -> the model; ``loss(model, batch, cfg,
    device, gather, key)`` -> a micro-batch's float32 loss (``key`` seeds its augmentations);
    ``after_step(model, cfg)`` -> the step's extra metrics; ``uses_ecg``: whether it reads the
    pairs' ECG side."""

    name: str
    build: Callable
    loss: Callable
    after_step: Callable
    uses_ecg: bool = False


def _clip_build(ppg_encoder, cfg, ecg_encoder=None, ecg_dim=None):
    return PPGECGClip(ppg_encoder, ecg_dim, ecg_encoder, cfg.embed_dim, cfg.temperature, dropout=cfg.head_dropout)


def _clip_loss(model, batch, cfg, device, gather, key):
    ppg, ecg = (t.to(device, non_blocking=True) for t in batch)
    with autocast(device, cfg.bf16):
        p, e, scale = model(ppg, ecg)
    return clip_loss(p.float(), e.float(), scale.float(), gather=gather)


def _clip_after(model, cfg):
    m = getattr(model, "module", model)
    if cfg.clamp_temperature:
        m.clamp_temperature()
    return {"temperature": 1 / m.logit_scale.detach().exp()}


def _views(batch, cfg, key):
    """Two augmented views of the batch's PPG, augmented in pieces of ``chunk_size`` windows (the
    release augments a chunk at a time: one crop coin per chunk) or whole."""
    x = batch[0]
    size = cfg.chunk_size or len(x)
    pieces = [two_views(x[a:a + size], (*key, a // size)) for a in range(0, len(x), size)]
    return torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])


def _simclr_loss(model, batch, cfg, device, gather, key):
    x1, x2 = (v.to(device, non_blocking=True) for v in _views(batch, cfg, key))
    with autocast(device, cfg.bf16):
        z1, z2 = model(x1, x2)
    return nt_xent(z1.float(), z2.float(), cfg.temperature, gather=gather)


def _byol_loss(model, batch, cfg, device, gather, key):
    x1, x2 = (v.to(device, non_blocking=True) for v in _views(batch, cfg, key))
    with autocast(device, cfg.bf16):
        online, target = model(x1, x2)
    return byol_loss([o.float() for o in online], [t.float() for t in target])


def _byol_after(model, cfg):
    getattr(model, "module", model).update_target()
    return {}


OBJECTIVES = {o.name: o for o in (
    Objective("clip", _clip_build, _clip_loss, _clip_after, uses_ecg=True),
    Objective("simclr", lambda enc, cfg, *_: SimCLR(enc, cfg.embed_dim, cfg.temperature), _simclr_loss,
              lambda model, cfg: {}),
    Objective("byol", lambda enc, cfg, *_: BYOL(enc, cfg.embed_dim, decay=cfg.ema_decay), _byol_loss, _byol_after),
)}
