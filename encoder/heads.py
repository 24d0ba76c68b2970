"""The fine-tuning model: the encoder applied to each window, its windows' logits aggregated
per stay; and the loss over labelled entries only.

The encoder runs under the caller's autocast (bf16 on a GPU); the head, the aggregation and the
loss run in float32 outside it, so that a stay's probabilities are not rounded to bf16's few
hundred distinct values per phecode."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import unwrap
from .distributed import autocast, no_autocast
from .loop import in_batches
from .net1d import Net1D


class StayClassifier(nn.Module):
    """Encoder applied to each window; the stay's logits aggregate its windows.

    ``mean_logits`` averages per-window logits; ``mean_embedding`` averages embeddings then
    classifies; ``attention`` weights embeddings by gated attention (Ilse et al., 2018). All are
    invariant to the order of the windows.
    """

    def __init__(self, encoder: Net1D, n_out: int, aggregation: str = "mean_logits", dropout: float = 0.2):
        super().__init__()
        self.encoder, self.aggregation = encoder, aggregation
        d = encoder.out_dim
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d, n_out)
        if aggregation == "attention":
            self.att_v, self.att_u, self.att_w = nn.Linear(d, 128), nn.Linear(d, 128), nn.Linear(128, 1)

    def forward(self, x, distinct=None):  # x: [B, W, 1, L]; distinct: [B, W] bool, or all windows
        b, w = x.shape[:2]
        emb = self.encoder(x.reshape(b * w, *x.shape[2:])).reshape(b, w, -1)
        with no_autocast(emb.device):
            return self._aggregate(emb.float(), distinct)

    def _aggregate(self, emb, distinct):
        b, w = emb.shape[:2]
        if distinct is None:
            weight = torch.full((b, w, 1), 1.0 / w, dtype=emb.dtype, device=emb.device)
        else:
            weight = distinct.to(emb.dtype).unsqueeze(-1)
            weight = weight / weight.sum(1, keepdim=True).clamp(min=1.0)
        if self.aggregation == "mean_logits":
            return (self.head(self.drop(emb)) * weight).sum(1)
        if self.aggregation == "mean_embedding":
            return self.head(self.drop((emb * weight).sum(1)))
        a = self.att_w(torch.tanh(self.att_v(emb)) * torch.sigmoid(self.att_u(emb)))  # [B, W, 1]
        if distinct is not None:  # repeats of a window get no attention of their own
            a = a.masked_fill(~distinct.unsqueeze(-1), float("-inf"))
        return self.head(self.drop((torch.softmax(a, dim=1) * emb).sum(1)))


def masked_bce(logits, y, mask, pos_weight=None):
    """Binary cross-entropy averaged over the labelled (mask) entries only: a null label is
    neither a positive nor a negative and contributes no gradient."""
    loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none", pos_weight=pos_weight)
    mask = mask.to(loss.dtype)
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


@torch.no_grad()
def predict_dataset(model, dataset, device, batch: int, bf16: bool, workers: int = 0) -> np.ndarray:
    """Each stay's probabilities (float32 ``[stays, phecodes]``), batches read by ``workers``
    processes into pinned memory on a GPU."""
    m = unwrap(model)
    was = m.training
    m.eval()
    out = []
    for _, x, _, _, distinct in in_batches(dataset, batch, workers, pin=device.type == "cuda"):
        with autocast(device, bf16):
            out.append(torch.sigmoid(m(x.to(device, non_blocking=True), distinct.to(device))).cpu().numpy())
    m.train(was)
    return np.concatenate(out) if out else np.zeros((0, m.head.out_features), np.float32)
