"""Any PPG encoder, frozen, as a function from windows to embeddings (``phewas probe``).

An encoder is named by a pretraining run folder (its exported ``ppg_encoder.pth``), a
fine-tuning run folder (the encoder of its best checkpoint), AnyPPG weights (``.pth`` or
``.safetensors``), or ``random``: the same architecture with seeded random weights, the floor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from phewas.base.errors import InputError, PhewasError
from phewas.base.io import file_sha256

from .checkpoints import load_anyppg, read_state_dict
from .config import Net1DConfig, anyppg_config
from .distributed import autocast, setup_distributed
from .net1d import Net1D

RANDOM = "random"


def _run_architecture(run: Path) -> Net1DConfig:
    try:
        return Net1DConfig.from_dict(json.loads((run / "config.json").read_text())["ppg"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(run / "config.json", f"not a run's configuration ({type(err).__name__}: {err})") from None


def load_encoder(spec: str, *, architecture: Net1DConfig | None = None, seed: int = 0) -> tuple[Net1D, dict]:
    """The encoder named by ``spec`` in eval mode, and a description (``kind``, ``path``,
    ``sha256``). ``architecture`` is ``random``'s (default AnyPPG's) and a weights file's."""
    if spec == RANDOM:
        torch.manual_seed(seed)
        model = Net1D(architecture or anyppg_config())
        return model.eval(), {"kind": "random", "seed": seed, "path": None, "sha256": None}
    path = Path(spec)
    if path.is_dir():
        arch = _run_architecture(path)
        if (path / "ppg_encoder.pth").is_file():  # a pretraining run
            model = load_anyppg(path / "ppg_encoder.pth", arch)
            return model.eval(), {"kind": "pretraining run", "path": str(path.resolve()),
                                  "sha256": file_sha256(path / "ppg_encoder.pth"), "architecture": arch}
        best = path / "checkpoints" / "best.pt"
        if best.is_file():  # a fine-tuning run: the encoder of its stay classifier
            state = read_state_dict(best)
            weights = state.get("model", state)
            enc = {k.removeprefix("encoder."): v for k, v in weights.items() if k.startswith("encoder.")}
            if not enc:
                raise InputError(best, "holds no encoder weights (is this a `phewas finetune` run?)")
            model = Net1D(arch)
            model.load_state_dict(enc, strict=True)
            return model.eval(), {"kind": "fine-tuning run", "path": str(path.resolve()),
                                  "sha256": file_sha256(best), "architecture": arch}
        raise PhewasError(f"{path}: neither a pretraining run (ppg_encoder.pth) nor a fine-tuning run "
                          "(checkpoints/best.pt)")
    if not path.is_file():
        raise InputError(path, "encoder not found: give a run folder, a .pth/.safetensors file or 'random'")
    model = load_anyppg(path, architecture)
    return model.eval(), {"kind": "weights", "path": str(path.resolve()), "sha256": file_sha256(path)}


@torch.no_grad()
def embed(model: Net1D, windows: np.ndarray, *, batch: int = 256, device: str = "auto",
          bf16: bool = True) -> np.ndarray:
    """float32 ``[n, d]`` embeddings of ``[n, 1250]`` windows, in batches (bf16 on a GPU)."""
    dev = setup_distributed(device).device
    model = model.to(dev).eval()
    out = []
    for a in range(0, len(windows), batch):
        x = torch.from_numpy(np.ascontiguousarray(windows[a:a + batch], dtype=np.float32)).unsqueeze(1).to(dev)
        with autocast(dev, bf16):
            out.append(model(x).float().cpu().numpy())
    return np.vstack(out) if out else np.zeros((0, model.out_dim), np.float32)
