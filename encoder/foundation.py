"""Released PPG foundation models in this toolkit's encoder classes: PaPaGei-S, PaPaGei-P
(Nokia Bell Labs; Zenodo record 13983110) and Pulse-PPG (Zenodo record 17345536), beside AnyPPG.

Each loader reads the project's own release format, infers the network's width and depth from the
weights' shapes (so that a smaller model of the same family loads too), loads strictly, and wraps
the network in the input convention of its training:

==============  ===================================  ==========================  ===================
model           file                                 network                     input
==============  ===================================  ==========================  ===================
PaPaGei-S       ``papagei_s.pt``: flat state dict,   ResNet1D + ``dense``; the   10 s at 125 Hz,
                ``module.`` prefix (DDP), MoE heads  MoE heads (IPA, SQI) are    band-passed,
                                                     not part of the embedding   z-scored
PaPaGei-P       ``papagei_p.pt``: flat state dict    ResNet1D + ``dense``        as PaPaGei-S
Pulse-PPG       ``checkpoint_best.pkl``: ``{"net":   ResNet1D, input instance    50 Hz (our 125-Hz
                state dict, "optimizer", ...}``      norm, max over time         windows resampled)
==============  ===================================  ==========================  ===================

This toolkit's windows are 10 s at 125 Hz, band-passed and z-scored (:mod:`cohorts.preprocess`),
PaPaGei's convention; Pulse-PPG's encoder gets them resampled to 50 Hz by the Fourier method, as
the AnyPPG paper fed the models it compared. ``tests/test_foundation.py`` checks each loader
against the projects' own model code on weights saved in their formats.
"""

from __future__ import annotations

import re

from phewas.base.errors import InputError

from .architecture import build_encoder
from .checkpoints import load_strict, read_state_dict
from .resnet1d import Resampled, ResNet1DConfig

FAMILIES = ("papagei", "pulse-ppg")
_HEADS = ("expert_layers_", "gating_network_")  # PaPaGei-S's multi-task heads, not the embedding


def resnet1d_config(state: dict, family: str) -> ResNet1DConfig:
    """The :class:`ResNet1DConfig` that ``state`` (keys without prefix) was saved from."""
    first = state["first_block_conv.conv.weight"]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"basicblock_list\.(\d+)\.", k))}
    common = {"in_channels": int(first.shape[1]), "base_filters": int(first.shape[0]),
              "kernel_size": int(first.shape[2]), "n_block": max(blocks) + 1 if blocks else 0}
    if family == "pulse-ppg":
        return ResNet1DConfig(family=family, **common, final_bn=False, pool="max", dense=False, input_norm=True)
    dense = "dense.weight" in state
    return ResNet1DConfig(family=family, **common, final_bn="final_bn.weight" in state, pool="mean", dense=dense,
                          dense_out=int(state["dense.weight"].shape[0]) if dense else None)


def family_of(state: dict) -> str | None:
    """Which family a checkpoint's object is, by its layout: Pulse-PPG's nested ``net``, or a flat
    ResNet1D state dict (PaPaGei); None for anything else (AnyPPG's Net1D, say)."""
    if isinstance(state.get("net"), dict) and "first_block_conv.conv.weight" in state["net"]:
        return "pulse-ppg"
    keys = {k.removeprefix("module.") for k in state}
    if "first_block_conv.conv.weight" in keys:
        return "papagei"
    return None


def load_foundation(path, state: dict | None = None):
    """The encoder released at ``path`` (PaPaGei-S, PaPaGei-P or Pulse-PPG, recognised by its
    layout) in eval mode, and a description: ``family``, ``architecture`` (the config's dict),
    ``input`` (the convention it is fed), ``ignored`` (keys not part of the embedding)."""
    state = read_state_dict(path) if state is None else state
    family = family_of(state)
    if family is None:
        raise InputError(path, "not a PaPaGei or Pulse-PPG checkpoint (no first_block_conv.conv.weight)")
    if family == "pulse-ppg":
        weights = state["net"]
    else:
        weights = {k.removeprefix("module."): v for k, v in state.items()}
    ignored = sorted(k for k in weights if k.startswith(_HEADS))
    weights = {k: v for k, v in weights.items() if not k.startswith(_HEADS)}
    cfg = resnet1d_config(weights, family)
    model = build_encoder(cfg)
    load_strict(model.encoder if isinstance(model, Resampled) else model, weights, path)
    fed = ("the 10-s 125-Hz window resampled to 50 Hz (500 samples)" if family == "pulse-ppg"
           else "the 10-s 125-Hz window (1,250 samples), band-passed and z-scored")
    name = {"pulse-ppg": "Pulse-PPG", "papagei": "PaPaGei-S" if ignored else "PaPaGei-P"}[family]
    return model.eval(), {"family": family, "model": name, "architecture": cfg.to_dict(), "input": fed,
                          "ignored": len(ignored)}


def build_foundation(family: str, cfg: dict | None = None):
    """A network of ``family`` (random weights; ``cfg`` a :class:`ResNet1DConfig` dict, default the
    released shape) in its input convention, as :func:`load_foundation` returns it."""
    from .resnet1d import papagei_config, pulseppg_config

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    conf = ResNet1DConfig.from_dict(cfg) if cfg else (pulseppg_config() if family == "pulse-ppg" else papagei_config())
    return build_encoder(conf)
