"""Reading a weights file: the one place that opens ``.pth``/``.pt`` files (with
``torch.load(..., weights_only=True)``: no code in them runs) and ``.safetensors`` files, and the
strict loading of a state dict into a model."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from phewas.base.errors import InputError


def read_state_dict(path) -> dict:
    """A state dict from ``.pth``/``.pt`` (``weights_only=True``) or ``.safetensors``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message suggests weights_only=False, which would run the file's code: never
        # pass that on; keep only its diagnosis
        text = str(err)
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()[0] if text.strip() else ""
        detail = detail.split(" was not an allowed global")[0]  # not torch's advice on allowing it
        if "Unsupported global" in text:
            raise InputError(path, "holds objects other than tensors and plain containers; refused "
                             "(checkpoints are read with weights_only=True, so that no code in them runs; "
                             f"{detail})") from None
        raise InputError(path, f"not a readable checkpoint ({detail})") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        first = str(err).splitlines()[0] if str(err) else ""
        raise InputError(path, f"not a readable checkpoint ({type(err).__name__}: {first})") from None
    if not isinstance(obj, dict):
        raise InputError(path, f"expected a state dict, found {type(obj).__name__}")
    return obj


def load_strict(model: nn.Module, state: dict, path) -> None:
    """Load ``state`` into ``model``; a mismatch is an :class:`InputError` naming ``path``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {name} (e.g. {keys[0]})")
        raise InputError(path, "does not match the encoder: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
