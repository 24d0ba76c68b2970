"""Released weights in and out: AnyPPG (``anyppg_ckpt.pth``) and ECGFounder checkpoints.

Checkpoints are read with ``torch.load(..., weights_only=True)`` (no code runs on load) or, for
``.safetensors`` files, with safetensors. A missing or mismatched checkpoint is an error, never
a silent fall-back to random weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from phewas.base.errors import InputError, PhewasError
from phewas.base.io import atomic_file

from .config import Net1DConfig, anyppg_config, ecgfounder_config
from .net1d import Net1D
from .weights_file import load_strict, read_state_dict

log = logging.getLogger(__name__)


def load_anyppg(path, config=None) -> nn.Module:
    """The PPG encoder of architecture ``config`` (default AnyPPG's; a
    :class:`~encoder.config.ResNet1DConfig` too) with the weights at ``path`` (a plain state dict,
    as AnyPPG releases it and ``pretrain`` exports it) loaded strictly."""
    from .families import build

    model = build(config or anyppg_config())
    load_strict(model, read_state_dict(path), path)
    return model


def save_anyppg(model: nn.Module, path) -> None:
    """Write the encoder's weights as a plain state dict (``.safetensors`` by extension), atomically."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_file(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file
            save_file(state, str(tmp))
        else:
            torch.save(state, tmp)


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


def initial_encoder(cfg) -> tuple[nn.Module, object, str]:
    """The PPG encoder a training run starts from (``cfg.init``, an encoder spec of
    :mod:`encoder.specs`: a pretraining run folder, a pretraining checkpoint, released weights of a
    family, or None for ``cfg.ppg`` with random weights), its architecture, and a sentence on
    where its weights came from. The architecture is the run's or the released model's where
    ``init`` names one; ``cfg`` is left as it is (the caller records the architecture)."""
    from . import families
    from .specs import parse_spec

    if cfg.init is None:
        return families.build(cfg.ppg), cfg.ppg, "no --init: the encoder trains from scratch"
    try:
        spec = parse_spec(cfg.init)
    except ValueError as err:
        raise PhewasError(f"--init: {err}") from None
    if spec.kind == "run":  # a pretrain run: its exported encoder and architecture
        init = Path(spec.path)
        try:
            arch = families.architecture_from_dict(json.loads((init / "config.json").read_text())["ppg"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(init / "config.json", "--init: not a pretraining run's configuration "
                             f"({type(err).__name__}: {err})") from None
        if arch != cfg.ppg:
            log.info("--init run uses another encoder than the preset: taking the run's")
        path = init / "ppg_encoder.pth"
        if not path.exists():
            raise PhewasError(f"{init}: no ppg_encoder.pth (has the pretraining run finished?)")
        return load_anyppg(path, arch), arch, f"initialised from pretraining run {init}"
    if spec.kind not in ("file", "family"):
        raise PhewasError(f"--init {cfg.init!r}: a run folder or a weights file (FAMILY:FILE or FILE)")
    path = Path(spec.path)
    state = read_state_dict(path)
    nested = families.layout_of(state) == "net1d" and "first_conv.conv.weight" not in {
        k.removeprefix("module.") for k in state}
    if nested and spec.family in (None, "anyppg"):  # a pretraining checkpoint: its architecture is cfg.ppg's
        enc = families.build(cfg.ppg)
        load_strict(enc, families.network_weights(state, "net1d")[0], path)
        return enc, cfg.ppg, f"initialised from pretraining checkpoint {path}"
    enc, arch, desc = families.load(path, spec.family, state,
                                    architecture=cfg.ppg if isinstance(cfg.ppg, Net1DConfig) else None)
    return enc.train(), arch, f"initialised from {desc['model']} weights {path} ({desc['input']})"


# Training checkpoints: a run's whole state, for --resume

def rng_states(d=None) -> dict:
    """Every rank's random-number states (CPU, and its own GPU's), gathered to each rank: a
    collective under torchrun, so every rank calls it at the same steps."""
    own = {"cpu": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized()
           else None}
    if d is None or d.world == 1:
        return {"rng_by_rank": [own]}
    gathered = [None] * d.world
    torch.distributed.all_gather_object(gathered, own)
    return {"rng_by_rank": gathered}


def restore_rng(state: dict, rank: int = 0, world: int = 1, reseed=None) -> str:
    """Put back this rank's random-number states from a checkpoint, on any number of visible
    devices: its own entry when the run has as many ranks as when it was saved (exact resume);
    otherwise ``reseed(step)`` (a deterministic seed from the run's seed, the checkpoint's step and
    the rank), so that a resume on another number of GPUs runs, though not bit-exact. Returns what
    was done."""
    by_rank = state.get("rng_by_rank")
    if by_rank is None:  # checkpoints of earlier versions: one CPU state, every device's CUDA state
        torch.set_rng_state(state["rng_cpu"])
        cuda = state.get("rng_cuda") or []
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        return "restored (earlier format)"
    if len(by_rank) != world:
        if reseed is not None:
            reseed(int(state.get("step", 0)))
        return f"reseeded: saved by {len(by_rank)} processes, resumed by {world}"
    own = by_rank[rank]
    torch.set_rng_state(own["cpu"])
    if own.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(own["cuda"])
    return "restored"


def save_checkpoint(path: Path, *, model, optimizer, scheduler, step: int, best: float, extra: dict,
                    rng: dict | None = None) -> None:
    """Everything a run needs to continue exactly: weights, optimiser, schedule, step, and every
    rank's random-number states (``rng``: :func:`rng_states`, gathered by all ranks)."""
    state = {
        "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "step": step, "best": best,
        **(rng if rng is not None else rng_states()), **extra,
    }
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, *, model, optimizer=None, scheduler=None, rank: int = 0, world: int = 1,
                    restore_random: bool = True, reseed=None) -> dict:
    """Load a training checkpoint into ``model`` (and the optimiser and schedule); on ``--resume``
    (``restore_random``) put back this rank's random-number states (:func:`restore_rng`). Loading
    for prediction touches no random state, whatever devices saved it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    unwrap(model).load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_random:
        how = restore_rng(state, rank, world, reseed)
        if how.startswith("reseeded"):
            log.warning("%s: random state %s (the run continues; it is not the uninterrupted run's)", path, how)
    return state


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model
