"""Net1D: the 1-D ResNet family of ECGFounder and AnyPPG (Hong et al.), weight-compatible.

Module names and parameter shapes follow the released checkpoints (``first_conv.conv.weight``,
``stage_list.<s>.block_list.<b>.bn1.weight``, ``...se_fc2.bias``), so their state dicts load
strictly. The computation is the reference's: per block, pre-activation BN -> Swish -> dropout ->
1x1 conv, then the grouped k-conv (stride 2 in a stage's first block), then a 1x1 conv;
squeeze-and-excitation (ratio 2, Swish); a max-pool shortcut with zero-padded channels; "same"
padding as TensorFlow computes it. It runs faster than a literal transcription by using fused
SiLU, the convolution's own padding where it is symmetric, broadcasting instead of ``einsum``
and channel padding without transposes (``bench/bench_encoder.py`` measures both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import Net1DConfig, anyppg_config


class SamePadConv1d(nn.Module):
    """Conv1d with TensorFlow "same" padding: output length ``ceil(L / stride)``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        sym = stride == 1 and kernel_size % 2 == 1
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, groups=groups,
                              padding=(kernel_size - 1) // 2 if sym else 0)
        self._sym = sym

    def forward(self, x):
        if not self._sym:
            n = x.shape[-1]
            out = (n + self.stride - 1) // self.stride
            p = max(0, (out - 1) * self.stride + self.kernel_size - n)
            x = F.pad(x, (p // 2, p - p // 2))
        return self.conv(x)


class Block(nn.Module):
    def __init__(self, in_channels, out_channels, ratio, kernel_size, stride, groups, downsample,
                 first, dropout):
        super().__init__()
        mid = int(out_channels * ratio)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.first, self.downsample = first, downsample
        self.stride = stride if downsample else 1
        self.bn1 = nn.BatchNorm1d(in_channels)  # present (and saved) even where unused, as released
        if first:  # the network's first block skips it: frozen, so DDP sees no unused gradients
            self.bn1.requires_grad_(False)
        self.conv1 = SamePadConv1d(in_channels, mid, 1)
        self.bn2 = nn.BatchNorm1d(mid)
        self.conv2 = SamePadConv1d(mid, mid, kernel_size, self.stride, groups=groups)
        self.bn3 = nn.BatchNorm1d(mid)
        self.conv3 = SamePadConv1d(mid, out_channels, 1)
        self.se_fc1 = nn.Linear(out_channels, out_channels // 2)
        self.se_fc2 = nn.Linear(out_channels // 2, out_channels)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        out = x
        if not self.first:
            out = self.drop(F.silu(self.bn1(out)))
        out = self.conv1(out)
        out = self.conv2(self.drop(F.silu(self.bn2(out))))
        out = self.conv3(self.drop(F.silu(self.bn3(out))))
        se = torch.sigmoid(self.se_fc2(F.silu(self.se_fc1(out.mean(-1)))))
        out = out * se.unsqueeze(-1)
        identity = x
        if self.downsample:
            p = self.stride - 1  # max pool with "same" padding (zeros), kernel = stride
            identity = F.max_pool1d(F.pad(identity, (p // 2, p - p // 2)), self.stride)
        if self.out_channels != self.in_channels:
            extra = self.out_channels - self.in_channels
            identity = F.pad(identity, (0, 0, extra // 2, extra - extra // 2))
        return out + identity


class Net1DStage(nn.Module):
    def __init__(self, in_channels, out_channels, cfg: Net1DConfig, i_stage: int, m_blocks: int):
        super().__init__()
        self.block_list = nn.ModuleList(
            Block(in_channels if b == 0 else out_channels, out_channels, cfg.ratio, cfg.kernel_size,
                  cfg.stride if b == 0 else 1, out_channels // cfg.groups_width, downsample=b == 0,
                  first=i_stage == 0 and b == 0, dropout=cfg.dropout)
            for b in range(m_blocks))

    def forward(self, x):
        for block in self.block_list:
            x = block(x)
        return x


class Net1D(nn.Module):
    """Encoder ``[B, C, L] -> [B, filter_list[-1]]`` (mean over time of the last stage)."""

    def __init__(self, cfg: Net1DConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or anyppg_config()
        self.first_conv = SamePadConv1d(cfg.in_channels, cfg.base_filters, cfg.kernel_size, stride=2)
        self.first_bn = nn.BatchNorm1d(cfg.base_filters)
        stages, c = [], cfg.base_filters
        for i, (f, m) in enumerate(zip(cfg.filter_list, cfg.m_blocks_list)):
            stages.append(Net1DStage(c, f, cfg, i, m))
            c = f
        self.stage_list = nn.ModuleList(stages)
        self.out_dim = c

    def features(self, x):
        """The last stage's feature map ``[B, C, T]``."""
        x = F.silu(self.first_bn(self.first_conv(x)))
        for stage in self.stage_list:
            x = stage(x)
        return x

    def forward(self, x):
        return self.features(x).mean(-1)
