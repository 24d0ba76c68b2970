"""The AnyPPG paper's self-supervised baselines on PPG alone: SimCLR (Chen et al., 2020) and BYOL
(Grill et al., 2020), as the AnyPPG repository trains them (``pretraining/simclr``,
``pretraining/byol``), for ``pretrain --objective simclr|byol``: the ECG-guidance ablation.

- Two views of each window, each through the augmentations of the AnyPPG repository, from the
  ``tsaug`` package with its settings: time warp (10 speed changes, p 0.5), a 9-s crop resized to
  10 s (p 0.3), Gaussian noise of 2% of the range (p 0.95), 5% of points dropped in 50-sample runs
  (p 0.5), drift (p 0.5), time reversal (p 0.1), quantisation to 100 levels (p 0.1). Each draw is
  seeded by the run's seed, the step, the micro-batch, the view and the process, so a resumed run
  draws what the uninterrupted one would have.
- SimCLR: projector ``Linear(d, d) -> GELU -> Linear(d, 128)``, NT-Xent at temperature 0.07 over
  the batch gathered across processes.
- BYOL: projector and predictor ``Linear -> BatchNorm -> GELU -> Linear`` (hidden 512, output 128);
  a target encoder and projector that follow the online ones by an exponential moving average
  (0.99, parameters only); loss ``2 - 2 cos``, symmetrised.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def augmenter(seed: int):
    """The AnyPPG repository's augmentation pipeline (tsaug), every random draw from ``seed``."""
    try:
        from tsaug import AddNoise, Crop, Drift, Dropout, Quantize, Reverse, TimeWarp
    except ImportError:
        raise ImportError("pretrain --objective simclr|byol needs tsaug: pip install 'phewas[train]'") from None
    s = np.random.SeedSequence(seed).generate_state(7)
    return (TimeWarp(n_speed_change=10, prob=0.5, seed=int(s[0]))
            + Crop(size=1125, resize=1250, prob=0.3, seed=int(s[1]))
            + AddNoise(loc=0, scale=0.02, prob=0.95, seed=int(s[2]))
            + Dropout(p=0.05, size=50, prob=0.5, seed=int(s[3]))
            + Drift(prob=0.5, seed=int(s[4]))
            + Reverse(prob=0.1, seed=int(s[5]))
            + Quantize(n_levels=100, prob=0.1, seed=int(s[6])))


def two_views(ppg: torch.Tensor, key: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two augmented views of windows ``[B, 1, L]`` (z-scored per window first, as the AnyPPG
    repository does), seeded by ``key``."""
    x = ppg.detach().float().cpu().numpy()[:, 0, :].astype(np.float64)
    x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-5)
    views = []
    for view in (0, 1):
        seed = int(np.random.SeedSequence([*key, view]).generate_state(1)[0])
        out = augmenter(seed).augment(x)
        views.append(torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).unsqueeze(1))
    return views[0], views[1]


class SimCLR(nn.Module):
    def __init__(self, ppg_encoder: nn.Module, embed_dim: int = 128, temperature: float = 0.07):
        super().__init__()
        self.ppg_encoder, self.temperature = ppg_encoder, temperature
        d = ppg_encoder.out_dim
        self.projector = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, embed_dim))

    def forward(self, x1, x2):
        return self.projector(self.ppg_encoder(x1)), self.projector(self.ppg_encoder(x2))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float, gather: bool = True) -> torch.Tensor:
    """NT-Xent (SimCLR's loss): each view's positive is the other view of its window, its negatives
    the other 2N - 2 views of the batch (gathered across processes)."""
    from .clip import gather_features

    if gather:
        z1, z2 = gather_features(z1, z2)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.GELU(), nn.Linear(hidden, d_out))


class BYOL(nn.Module):
    def __init__(self, ppg_encoder: nn.Module, embed_dim: int = 128, hidden: int = 512, decay: float = 0.99):
        super().__init__()
        self.ppg_encoder, self.decay = ppg_encoder, decay  # the online encoder
        self.projector = _mlp(ppg_encoder.out_dim, hidden, embed_dim)
        self.predictor = _mlp(embed_dim, hidden, embed_dim)
        self.target_encoder = copy.deepcopy(ppg_encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in (*self.target_encoder.parameters(), *self.target_projector.parameters()):
            p.requires_grad_(False)

    def forward(self, x1, x2):
        online = [self.predictor(self.projector(self.ppg_encoder(x))) for x in (x1, x2)]
        with torch.no_grad():
            target = [self.target_projector(self.target_encoder(x)) for x in (x1, x2)]
        return online, target

    @torch.no_grad()
    def update_target(self) -> None:
        """``target = decay * target + (1 - decay) * online``, parameters only (not BN statistics)."""
        for online, target in ((self.ppg_encoder, self.target_encoder), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(self.decay).add_(po.detach(), alpha=1 - self.decay)


def byol_loss(online: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """``2 - 2 cos(prediction of one view, target projection of the other)``, both ways, averaged."""
    def one(p, z):
        return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)
    return ((one(online[0], target[1]) + one(online[1], target[0])) / 2).mean()
