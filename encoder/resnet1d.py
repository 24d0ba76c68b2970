"""ResNet1D: the simpler 1-D ResNet of Hong's ``resnet1d`` that PaPaGei and Pulse-PPG were trained
in, weight-compatible with their released checkpoints.

Module names and parameter shapes follow those checkpoints (``first_block_conv.conv.weight``,
``basicblock_list.<i>.bn1.weight``, ``final_bn.*``, ``dense.*``), so their state dicts load
strictly. Per block (pre-activation): BN -> ReLU -> dropout -> k-conv (stride 2 in every second
block), BN -> ReLU -> dropout -> k-conv; a max-pool shortcut with zero-padded channels; "same"
padding as TensorFlow computes it (:class:`encoder.net1d.SamePadConv1d`). Channels double every
fourth block. The first convolution has stride 1.

- PaPaGei (Pillai et al., ICLR 2025): base 32 filters, kernel 3, 18 blocks, then BN -> ReLU ->
  mean over time -> ``dense`` (512 -> 512): the embedding of its official extraction.
- Pulse-PPG (Saha et al., 2025): an input instance norm, base 128 filters, kernel 11, 12 blocks,
  no final BN, max over time: 512-d.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from .config import ResNet1DConfig, papagei_config, pulseppg_config  # noqa: F401 (re-exported)
from .net1d import SamePadConv1d


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool, first: bool,
                 dropout: float):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.first, self.downsample = first, downsample
        stride = 2 if downsample else 1
        self.bn1 = nn.BatchNorm1d(in_channels)  # saved in the checkpoints even where unused
        if first:
            self.bn1.requires_grad_(False)
        self.conv1 = SamePadConv1d(in_channels, out_channels, kernel_size, stride)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.conv2 = SamePadConv1d(out_channels, out_channels, kernel_size, 1)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        out = x if self.first else self.drop(F.relu(self.bn1(x)))
        out = self.conv1(out)
        out = self.conv2(self.drop(F.relu(self.bn2(out))))
        identity = x
        if self.downsample:  # max pool with "same" padding (zeros), kernel 2
            identity = F.max_pool1d(F.pad(identity, (0, 1)), 2)
        if self.out_channels != self.in_channels:
            extra = self.out_channels - self.in_channels
            identity = F.pad(identity, (0, 0, extra // 2, extra - extra // 2))
        return out + identity


class ResNet1D(nn.Module):
    """Encoder ``[B, C, L] -> [B, out_dim]``."""

    def __init__(self, cfg: ResNet1DConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or papagei_config()
        if cfg.pool not in ("mean", "max"):
            raise ValueError(f"pool must be 'mean' or 'max', not {cfg.pool!r}")
        self.first_block_conv = SamePadConv1d(cfg.in_channels, cfg.base_filters, cfg.kernel_size, 1)
        self.first_block_bn = nn.BatchNorm1d(cfg.base_filters)
        blocks, out = [], cfg.base_filters
        for i in range(cfg.n_block):
            in_ch = cfg.base_filters if i == 0 else cfg.base_filters * 2 ** ((i - 1) // cfg.increasefilter_gap)
            out = 2 * in_ch if i % cfg.increasefilter_gap == 0 and i != 0 else in_ch
            blocks.append(BasicBlock(in_ch, out, cfg.kernel_size, downsample=i % cfg.downsample_gap == 1,
                                     first=i == 0, dropout=cfg.dropout))
        self.basicblock_list = nn.ModuleList(blocks)
        if cfg.final_bn:
            self.final_bn = nn.BatchNorm1d(out)
        if cfg.dense:
            self.dense = nn.Linear(out, cfg.dense_out or out)
        self.out_dim = cfg.out_dim

    def features(self, x):
        """The last block's feature map ``[B, C, T]`` (after the final BN and ReLU where there is one)."""
        if self.cfg.input_norm:
            x = F.instance_norm(x)
        x = F.relu(self.first_block_bn(self.first_block_conv(x)))
        for block in self.basicblock_list:
            x = block(x)
        if self.cfg.final_bn:
            x = F.relu(self.final_bn(x))
        return x

    def forward(self, x):
        h = self.features(x)
        h = h.mean(-1) if self.cfg.pool == "mean" else h.amax(-1)
        return self.dense(h) if self.cfg.dense else h


class Resampled(nn.Module):
    """An encoder fed at another sampling rate: each window resampled from ``from_fs`` to ``to_fs``
    before ``encoder``, by the polyphase method (``method="poly"``: ``scipy.signal.resample_poly``
    as Pulse-PPG's own pipeline resamples) or the Fourier method (``"fourier"``:
    ``scipy.signal.resample``, as the AnyPPG paper resampled the windows it gave other models)."""

    def __init__(self, encoder: nn.Module, from_fs: float, to_fs: float, method: str = "poly"):
        super().__init__()
        if method not in RESAMPLING:
            raise ValueError(f"method must be one of {RESAMPLING}, got {method!r}")
        self.encoder, self.from_fs, self.to_fs, self.method = encoder, from_fs, to_fs, method
        self.out_dim = encoder.out_dim

    def forward(self, x):
        if self.method == "poly":
            return self.encoder(poly_resample(x, self.from_fs, self.to_fs))
        n = x.shape[-1]
        m = int(round(n * self.to_fs / self.from_fs))
        return self.encoder(fourier_resample(x, m))


RESAMPLING = ("poly", "fourier")


def poly_resample(x: torch.Tensor, from_fs: float, to_fs: float) -> torch.Tensor:
    """``scipy.signal.resample_poly(x, up, down, axis=-1)`` with its defaults (a Kaiser-windowed
    FIR of ``20 max(up, down) + 1`` taps, beta 5, zeros beyond the ends), ``up / down`` the ratio
    ``to_fs / from_fs`` in lowest terms, as PaPaGei's and Pulse-PPG's ``resample_batch_signal``
    reduces it; one strided convolution."""
    from fractions import Fraction

    ratio = Fraction(to_fs).limit_denominator() / Fraction(from_fs).limit_denominator()
    up, down = ratio.numerator, ratio.denominator
    if up == down:
        return x
    h = _poly_filter(up, down).to(x.device, torch.float64)
    n = x.shape[-1]
    n_out = -(-n * up // down)
    half = (len(h) - 1) // 2
    pre = down - half % down
    remove = (half + pre) // down
    post = 0
    while ((n - 1) * up + len(h) + pre + post - 1) // down + 1 < n_out + remove:
        post += 1
    h = torch.cat([h.new_zeros(pre), h, h.new_zeros(post)])
    lead = x.shape[:-1]
    flat = x.reshape(-1, 1, n).to(torch.float64)
    upsampled = flat.new_zeros(flat.shape[0], 1, (n - 1) * up + 1)
    upsampled[..., ::up] = flat
    full = F.conv1d(F.pad(upsampled, (len(h) - 1, len(h) - 1)), h.flip(0).view(1, 1, -1), stride=down)
    return full[..., remove:remove + n_out].to(x.dtype).reshape(*lead, n_out)


@lru_cache(maxsize=16)
def _poly_filter(up: int, down: int) -> torch.Tensor:
    from scipy import signal as sps
    m = max(up, down)
    return torch.from_numpy(sps.firwin(2 * 10 * m + 1, 1.0 / m, window=("kaiser", 5.0)) * up)


def fourier_resample(x: torch.Tensor, num: int) -> torch.Tensor:
    """``scipy.signal.resample(x, num, axis=-1)`` for real ``x``: the spectrum cut (or zero-padded)
    to ``num`` points, the Nyquist bin of an even length split as scipy splits it."""
    n = x.shape[-1]
    if num == n:
        return x
    X = torch.fft.rfft(x if x.is_floating_point() else x.float(), dim=-1)
    k = min(n, num) // 2 + 1
    Y = torch.zeros(*x.shape[:-1], num // 2 + 1, dtype=X.dtype, device=x.device)
    Y[..., :k] = X[..., :k]
    if min(n, num) % 2 == 0:  # the shared Nyquist bin
        if num < n:
            Y[..., k - 1] = X[..., k - 1] * 2  # folded: both halves of the longer spectrum
        elif num > n:
            Y[..., k - 1] = X[..., k - 1] / 2  # split between the two halves of the longer spectrum
    return torch.fft.irfft(Y, n=num, dim=-1) * (num / n)
