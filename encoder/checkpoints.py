"""Released weights in and out: AnyPPG (``anyppg_ckpt.pth``) and ECGFounder checkpoints.

Checkpoints are read with ``torch.load(..., weights_only=True)`` (no code runs on load) or, for
``.safetensors`` files, with safetensors. A missing or mismatched checkpoint is an error, never
a silent fall-back to random weights.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from phewas.errors import InputError

from .net1d import Net1D, Net1DConfig, anyppg_config, ecgfounder_config


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
        raise InputError(path, f"not a readable checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if not isinstance(obj, dict):
        raise InputError(path, f"expected a state dict, found {type(obj).__name__}")
    return obj


def load_strict(model: Net1D, state: dict, path) -> None:
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


def load_anyppg(path, config: Net1DConfig | None = None) -> Net1D:
    """The AnyPPG PPG encoder with the released weights at ``path`` loaded strictly."""
    model = Net1D(config or anyppg_config())
    load_strict(model, read_state_dict(path), path)
    return model


def save_anyppg(model: Net1D, path) -> None:
    """Write the encoder's weights as a plain state dict (``.safetensors`` by extension), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(tmp))
    else:
        torch.save(state, tmp)
    tmp.replace(path)


def load_ecgfounder(path, config: Net1DConfig | None = None) -> tuple[Net1D, dict]:
    """An ECGFounder checkpoint: the state dict may sit under ``state_dict`` (or ``model``), carry a
    ``module.`` prefix (DataParallel) and a classification head (``dense.*``), which is ignored.

    Returns the encoder and a report: ``used`` (keys loaded), ``ignored`` (keys left out).
    """
    state = read_state_dict(path)
    for key in ("state_dict", "model", "model_state_dict"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
            break
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = Net1D(config or ecgfounder_config())
    own = set(model.state_dict())
    ignored = sorted(k for k in state if k not in own)
    load_strict(model, {k: v for k, v in state.items() if k in own}, path)
    return model, {"used": len(own), "ignored": ignored}
