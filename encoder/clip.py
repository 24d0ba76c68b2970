"""ECG-guided CLIP: projection heads, the symmetric InfoNCE loss with features gathered across
ranks (as open_clip does), and retrieval metrics."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = math.log(100.0)


class ProjectionHead(nn.Module):
    """Dropout on the embedding (none at 0, the AnyPPG release's), then Linear-BatchNorm-GELU-Linear to
    the shared space, L2-normalised."""

    def __init__(self, in_dim: int, out_dim: int = 128, hidden: int | None = None, dropout: float = 0.2):
        super().__init__()
        hidden = hidden or in_dim
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.GELU(),
                                 nn.Linear(hidden, out_dim))

    def forward(self, x):
        return F.normalize(self.net(self.drop(x)), dim=-1)


class PPGECGClip(nn.Module):
    """PPG tower (trained) and ECG tower (trained, frozen, or replaced by cached features)."""

    def __init__(self, ppg_encoder: nn.Module, ecg_dim: int, ecg_encoder: nn.Module | None = None,
                 dim: int = 128, temperature: float = 0.07, dropout: float = 0.2):
        super().__init__()
        self.ppg_encoder = ppg_encoder
        self.ecg_encoder = ecg_encoder
        self.ppg_head = ProjectionHead(ppg_encoder.out_dim, dim, dropout=dropout)
        self.ecg_head = ProjectionHead(ecg_dim, dim, dropout=dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def forward(self, ppg, ecg):
        """``ecg`` is the raw window ``[B, 1, 5000]``, or, for a model built without an ECG encoder
        (the feature cache), the precomputed features ``[B, D]``."""
        ecg_features = ecg if self.ecg_encoder is None else self.ecg_encoder(ecg)
        return self.ppg_head(self.ppg_encoder(ppg)), self.ecg_head(ecg_features), self.logit_scale.exp()

    @torch.no_grad()
    def clamp_temperature(self):
        self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)


def gather_features(p: torch.Tensor, e: torch.Tensor):
    """All ranks' features, with gradients flowing back to this rank's slice (torch's functional
    collectives, whose backward is a reduce-scatter)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return p, e
    from torch.distributed._functional_collectives import all_gather_tensor_autograd
    return (all_gather_tensor_autograd(p, 0, dist.group.WORLD), all_gather_tensor_autograd(e, 0, dist.group.WORLD))


def clip_loss(p: torch.Tensor, e: torch.Tensor, scale: torch.Tensor, gather: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE over the global batch: this rank's rows against every rank's columns.
    ``gather=False`` scores this process's batch alone (evaluation on one rank)."""
    all_p, all_e = gather_features(p, e) if gather else (p, e)
    rank = dist.get_rank() if gather and dist.is_available() and dist.is_initialized() else 0
    labels = torch.arange(p.shape[0], device=p.device) + rank * p.shape[0]
    logits_p = scale * p @ all_e.T
    logits_e = scale * e @ all_p.T
    return 0.5 * (F.cross_entropy(logits_p, labels) + F.cross_entropy(logits_e, labels))


def retrieval_metrics(p: np.ndarray, e: np.ndarray, batch_size: int) -> dict:
    """PPG-to-ECG retrieval within consecutive batches of ``batch_size`` pairs, averaged over
    batches (the last partial batch is dropped): Recall@1/5/10 and mean reciprocal rank."""
    n = (len(p) // batch_size) * batch_size
    if n == 0:
        raise ValueError(f"{len(p)} pairs are fewer than one retrieval batch of {batch_size}")
    r1, r5, r10, mrr = [], [], [], []
    for a in range(0, n, batch_size):
        sim = p[a:a + batch_size] @ e[a:a + batch_size].T
        rank = (sim > np.diag(sim)[:, None]).sum(axis=1)  # 0 = the true ECG is the best match
        r1.append(np.mean(rank < 1))
        r5.append(np.mean(rank < 5))
        r10.append(np.mean(rank < 10))
        mrr.append(np.mean(1.0 / (rank + 1)))
    return {"recall@1": float(np.mean(r1)), "recall@5": float(np.mean(r5)), "recall@10": float(np.mean(r10)),
            "mrr": float(np.mean(mrr)), "batch_size": batch_size, "batches": n // batch_size,
            "chance_recall@1": 1.0 / batch_size}
