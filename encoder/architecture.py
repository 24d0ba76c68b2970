"""An encoder's architecture as a run records it (``config.json``'s ``ppg``): AnyPPG's Net1D
family (:class:`encoder.config.Net1DConfig`), or the ResNet1D family of PaPaGei and Pulse-PPG
(:class:`encoder.resnet1d.ResNet1DConfig`, recorded with its ``family``)."""

from __future__ import annotations

from torch import nn

from .config import Net1DConfig
from .net1d import Net1D
from .resnet1d import Resampled, ResNet1D, ResNet1DConfig

PULSEPPG_FS, WINDOW_FS = 50.0, 125.0


def architecture_from_dict(d: dict):
    """The config a run's ``config.json`` recorded."""
    return ResNet1DConfig.from_dict(d) if "family" in d else Net1DConfig.from_dict(d)


def build_encoder(arch) -> nn.Module:
    """A network of ``arch`` (random weights) in its input convention: Pulse-PPG's resamples the
    10-s 125-Hz windows to 50 Hz."""
    if isinstance(arch, ResNet1DConfig):
        net = ResNet1D(arch)
        return Resampled(net, WINDOW_FS, PULSEPPG_FS) if arch.family == "pulse-ppg" else net
    return Net1D(arch)
