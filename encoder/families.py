"""Encoder families: one record each (:data:`FAMILIES`), used wherever an encoder is built, recorded
or read from a file.

==============  ============================  ====================================  ===================
family          released file                 network                               input
==============  ============================  ====================================  ===================
``anyppg``      ``anyppg_ckpt.pth``: flat     Net1D (:mod:`encoder.net1d`), 512-d   10 s at 125 Hz,
                Net1D state dict                                                    preprocessed
``papagei-s``   ``papagei_s.pt``: flat,       ResNet1D + ``dense``; the MoE heads   as AnyPPG's
                ``module.`` prefix, MoE heads (IPA, SQI) are not the embedding
``papagei-p``   ``papagei_p.pt``: flat        ResNet1D + ``dense``                  as AnyPPG's
``pulse-ppg``   ``checkpoint_best.pkl``:      ResNet1D, input instance norm, max    50 Hz: the 125-Hz
                ``{"net": state dict, ...}``  over time                             window resampled
==============  ============================  ====================================  ===================

PaPaGei-S and -P: Nokia Bell Labs, Zenodo record 13983110 (Pillai et al., ICLR 2025). Pulse-PPG:
Zenodo record 17345536 (Saha et al., 2025). Pulse-PPG is fed the window resampled to 50 Hz with
``scipy.signal.resample_poly``, as its own pipeline does (``pulse-ppg-fourier``: by the Fourier
method, as the AnyPPG paper fed it).

A file read as a family must hold that family's released network exactly: a missing final
batch norm, dense layer or block, or another depth or width, is an error naming what differs. A
file named without a family is recognised by its layout, but only as one of these released
networks. Another member of a family (a smaller one, say) is read from a run folder, whose
``config.json`` records its architecture, or with ``released_only=False`` in code.

To add a family of a network already here (another release of ResNet1D or Net1D): its released
configuration in :mod:`encoder.config` and one :class:`Family` entry (the spec prefix follows
from its name). A new network adds its module and config dataclass, and its case in
:func:`build` and, for a new file layout, :func:`layout_of` and :func:`network_weights`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from phewas.base.errors import InputError

from .config import Net1DConfig, ResNet1DConfig, anyppg_config, papagei_config, pulseppg_config

PULSEPPG_FS, WINDOW_FS = 50.0, 125.0
_HEADS = ("expert_layers_", "gating_network_")  # PaPaGei-S's multi-task heads, not the embedding


@dataclass(frozen=True)
class Family:
    """A family: its spec ``name``, ``label``, the ``released`` architecture, its ``input``
    convention in words, its file ``layout`` (``net1d``, ``papagei`` or ``pulse-ppg``) and whether
    its released file carries PaPaGei-S's multi-task ``heads``."""

    name: str
    label: str
    released: Callable[[], object]
    input: str
    layout: str
    heads: bool = False


WINDOW_INPUT = "the 10-s 125-Hz window (1,250 samples), preprocessed and z-scored"
FAMILIES = {f.name: f for f in (
    Family("anyppg", "AnyPPG", anyppg_config, WINDOW_INPUT, "net1d"),
    Family("papagei-s", "PaPaGei-S", papagei_config, WINDOW_INPUT, "papagei", heads=True),
    Family("papagei-p", "PaPaGei-P", papagei_config, WINDOW_INPUT, "papagei"),
    Family("pulse-ppg", "Pulse-PPG", pulseppg_config,
           "the 10-s 125-Hz window resampled to 50 Hz (500 samples) by resample_poly", "pulse-ppg"),
    Family("pulse-ppg-fourier", "Pulse-PPG", lambda: replace(pulseppg_config(), resampling="fourier"),
           "the 10-s 125-Hz window resampled to 50 Hz (500 samples) by the Fourier method", "pulse-ppg"),
)}


def architecture_from_dict(d: dict):
    """The architecture a run's ``config.json`` recorded."""
    return ResNet1DConfig.from_dict(d) if "family" in d else Net1DConfig.from_dict(d)


def build(arch):
    """A network of ``arch`` (random weights) in its input convention: Pulse-PPG's resamples the
    10-s 125-Hz windows to 50 Hz."""
    from .net1d import Net1D
    from .resnet1d import Resampled, ResNet1D

    if isinstance(arch, ResNet1DConfig):
        net = ResNet1D(arch)
        return Resampled(net, WINDOW_FS, PULSEPPG_FS, arch.resampling) if arch.family == "pulse-ppg" else net
    return Net1D(arch)


def family_of_architecture(arch) -> str:
    """The family name an architecture belongs to (``papagei-p`` for a PaPaGei network)."""
    if isinstance(arch, ResNet1DConfig):
        if arch.family == "pulse-ppg":
            return "pulse-ppg" if arch.resampling == "poly" else "pulse-ppg-fourier"
        return "papagei-p"
    return "anyppg"


def layout_of(state: dict) -> str | None:
    """How a file's object is laid out: Pulse-PPG's nested ``net``, a flat ResNet1D state dict
    (PaPaGei), a Net1D one (AnyPPG's, or a pretraining checkpoint's ``ppg_encoder.``), or None."""
    if isinstance(state.get("net"), dict) and "first_block_conv.conv.weight" in state["net"]:
        return "pulse-ppg"
    keys = {k.removeprefix("module.") for k in state}
    if "first_block_conv.conv.weight" in keys:
        return "papagei"
    if "first_conv.conv.weight" in keys or _nested_net1d(state) is not None:
        return "net1d"
    return None


def _nested_net1d(state: dict) -> dict | None:
    """The PPG encoder of a training checkpoint: this toolkit's (``model``) or the AnyPPG release's
    trainer's (``model_state_dict``), keys ``ppg_encoder.*``."""
    for key in ("model", "model_state_dict"):
        inner = state.get(key)
        if isinstance(inner, dict) and any(k.startswith("ppg_encoder.") for k in inner):
            return {k.removeprefix("ppg_encoder."): v for k, v in inner.items() if k.startswith("ppg_encoder.")}
    return None


def network_weights(state: dict, layout: str) -> tuple[dict, list[str]]:
    """The network's weights in ``state`` and the keys left out (PaPaGei-S's heads)."""
    if layout == "pulse-ppg":
        return state["net"], []
    if layout == "net1d":
        nested = _nested_net1d(state)
        weights = nested if nested is not None else {k.removeprefix("module."): v for k, v in state.items()}
        return weights, []
    weights = {k.removeprefix("module."): v for k, v in state.items()}
    ignored = sorted(k for k in weights if k.startswith(_HEADS))
    return {k: v for k, v in weights.items() if not k.startswith(_HEADS)}, ignored


def recognise(state: dict) -> Family | None:
    """The family a file's object is, by its layout (PaPaGei-S by its multi-task heads)."""
    layout = layout_of(state)
    if layout is None:
        return None
    if layout == "papagei":
        return FAMILIES["papagei-s" if network_weights(state, layout)[1] else "papagei-p"]
    return FAMILIES["pulse-ppg" if layout == "pulse-ppg" else "anyppg"]


def resnet1d_config(state: dict, family: str) -> ResNet1DConfig:
    """The :class:`ResNet1DConfig` that ``state`` (network keys) was saved from (any width and
    depth: for ``released_only=False``)."""
    first = state["first_block_conv.conv.weight"]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"basicblock_list\.(\d+)\.", k))}
    common = {"in_channels": int(first.shape[1]), "base_filters": int(first.shape[0]),
              "kernel_size": int(first.shape[2]), "n_block": max(blocks) + 1 if blocks else 0}
    if family == "pulse-ppg":
        return ResNet1DConfig(family=family, **common, final_bn=False, pool="max", dense=False, input_norm=True)
    dense = "dense.weight" in state
    return ResNet1DConfig(family=family, **common, final_bn="final_bn.weight" in state, pool="mean", dense=dense,
                          dense_out=int(state["dense.weight"].shape[0]) if dense else None)


def _differences(model, weights: dict) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    wrong = [k for k in own if k in weights and tuple(weights[k].shape) != tuple(own[k].shape)]
    parts = [f"{len(keys)} {what} (e.g. {keys[0]})" for what, keys in
             (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong)) if keys]
    return "; ".join(parts)


def load(path, family: str | None = None, state: dict | None = None, *, released_only: bool = True,
         architecture=None):
    """The encoder in the file ``path`` (eval mode), its architecture and a description
    (``family``, ``model``, ``input``, ``ignored``: keys not part of the embedding).

    ``family`` (a name of :data:`FAMILIES`) says what the file must be; without it the family is
    recognised by the layout. With ``released_only`` (the default) the weights must form the
    family's released network exactly; otherwise width and depth are read from the weights (a
    ResNet1D family) and the file must match that. ``architecture`` is the Net1D architecture an
    AnyPPG-layout file must match instead of the released one (a training preset's). Every
    mismatch is an :class:`InputError` naming the file and what differs."""
    from .weights_file import load_strict, read_state_dict

    state = read_state_dict(path) if state is None else state
    found = recognise(state)
    if family is None:
        if found is None:
            raise InputError(path, "not a checkpoint of a known encoder family (AnyPPG, PaPaGei-S/-P, Pulse-PPG): "
                             "no first_conv.conv.weight or first_block_conv.conv.weight")
        fam = found
    else:
        fam = FAMILIES[family]
        if found is None or found.layout != fam.layout:
            what = "an unknown layout" if found is None else f"{found.label}'s layout"
            raise InputError(path, f"named {fam.name} but holds {what}")
        if found.heads != fam.heads:
            raise InputError(path, f"named {fam.name} but {'holds' if found.heads else 'lacks'} PaPaGei-S's "
                             f"multi-task heads: it is {found.label}'s file (name it {found.name}:FILE)")
    weights, ignored = network_weights(state, fam.layout)
    if fam.layout == "net1d" and architecture is not None:
        arch, released_only = architecture, False
    elif released_only or fam.layout == "net1d":
        arch = fam.released()
    else:
        arch = replace(resnet1d_config(weights, "pulse-ppg" if fam.layout == "pulse-ppg" else "papagei"),
                       resampling=fam.released().resampling)
    model = build(arch)
    net = getattr(model, "encoder", model)  # Pulse-PPG's network inside its resampling
    diff = _differences(net, weights)
    if diff:
        size = "released " if released_only else ""
        raise InputError(path, f"not {fam.label}'s {size}network: {diff}")
    load_strict(net, weights, path)
    return model.eval(), arch, {"family": fam.name, "model": fam.label, "input": fam.input, "ignored": len(ignored)}
