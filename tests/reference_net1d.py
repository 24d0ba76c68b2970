"""A literal, unoptimised Net1D, written from the published description of the AnyPPG/ECGFounder
network (x * sigmoid(x), explicit padding before every convolution, einsum for the SE scaling,
transposes for channel padding). Tests check the project's encoder against it; the encoder
benchmark times it as the eager baseline. Same module names, so the same state dict loads."""

import torch
import torch.nn.functional as F
from torch import nn


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class PadConv(nn.Module):
    def __init__(self, cin, cout, k, s, groups=1):
        super().__init__()
        self.k, self.s = k, s
        self.conv = nn.Conv1d(cin, cout, k, s, groups=groups)

    def forward(self, x):
        n = x.shape[-1]
        out = (n + self.s - 1) // self.s
        p = max(0, (out - 1) * self.s + self.k - n)
        return self.conv(F.pad(x, (p // 2, p - p // 2), "constant", 0))


class RefBlock(nn.Module):
    def __init__(self, cin, cout, k, s, groups, downsample, first, use_do):
        super().__init__()
        self.cin, self.cout, self.first, self.downsample, self.use_do = cin, cout, first, downsample, use_do
        self.s = s if downsample else 1
        self.bn1, self.act1, self.do1 = nn.BatchNorm1d(cin), Swish(), nn.Dropout(0.5)
        self.conv1 = PadConv(cin, cout, 1, 1)
        self.bn2, self.act2, self.do2 = nn.BatchNorm1d(cout), Swish(), nn.Dropout(0.5)
        self.conv2 = PadConv(cout, cout, k, self.s, groups)
        self.bn3, self.act3, self.do3 = nn.BatchNorm1d(cout), Swish(), nn.Dropout(0.5)
        self.conv3 = PadConv(cout, cout, 1, 1)
        self.se_fc1, self.se_fc2, self.se_act = nn.Linear(cout, cout // 2), nn.Linear(cout // 2, cout), Swish()

    def forward(self, x):
        identity, out = x, x
        if not self.first:
            out = self.act1(self.bn1(out))
            if self.use_do:
                out = self.do1(out)
        out = self.conv1(out)
        out = self.act2(self.bn2(out))
        if self.use_do:
            out = self.do2(out)
        out = self.conv2(out)
        out = self.act3(self.bn3(out))
        if self.use_do:
            out = self.do3(out)
        out = self.conv3(out)
        se = torch.sigmoid(self.se_fc2(self.se_act(self.se_fc1(out.mean(-1)))))
        out = torch.einsum("abc,ab->abc", out, se)
        if self.downsample:
            p = self.s - 1
            identity = F.max_pool1d(F.pad(identity, (p // 2, p - p // 2), "constant", 0), self.s)
        if self.cout != self.cin:
            identity = identity.transpose(-1, -2)
            c1 = (self.cout - self.cin) // 2
            identity = F.pad(identity, (c1, self.cout - self.cin - c1), "constant", 0).transpose(-1, -2)
        return out + identity


class RefStage(nn.Module):
    def __init__(self, cin, cout, k, s, groups, i_stage, m, use_do):
        super().__init__()
        self.block_list = nn.ModuleList(
            RefBlock(cin if b == 0 else cout, cout, k, s if b == 0 else 1, groups, b == 0, i_stage == 0 and b == 0,
                     use_do) for b in range(m))

    def forward(self, x):
        for b in self.block_list:
            x = b(x)
        return x


class ReferenceNet1D(nn.Module):
    def __init__(self, base=64, filters=(64, 160, 160, 400, 400, 512), blocks=(2, 2, 2, 3, 3, 1), k=3, s=2,
                 groups_width=16, use_do=True):
        super().__init__()
        self.first_conv = PadConv(1, base, k, 2)
        self.first_bn, self.first_act = nn.BatchNorm1d(base), Swish()
        self.stage_list, c = nn.ModuleList(), base
        for i, (f, m) in enumerate(zip(filters, blocks)):
            self.stage_list.append(RefStage(c, f, k, s, f // groups_width, i, m, use_do))
            c = f

    def forward(self, x):
        x = self.first_act(self.first_bn(self.first_conv(x)))
        for st in self.stage_list:
            x = st(x)
        return x.mean(-1)
