"""Any PPG encoder, frozen, as a function from windows to embeddings (``phewas probe``).

An encoder is named by a pretraining run folder (its exported ``ppg_encoder.pth``), a
fine-tuning run folder (the encoder of its best checkpoint), released weights (AnyPPG's ``.pth``
or ``.safetensors``; PaPaGei-S's and PaPaGei-P's ``.pt``; Pulse-PPG's ``checkpoint_best.pkl``:
:mod:`encoder.foundation`), a general time-series model's folder (``moment:DIR``,
``chronos:DIR``: :mod:`encoder.tsfm`), ``random`` (AnyPPG's architecture with seeded random
weights, the floor; ``random:papagei``, ``random:pulse-ppg`` for those families), or
``features``: the pulse features of ``phewas features`` (:mod:`encoder.pulse`) per window, a
hand-crafted row beside the networks. A network's example embedding is the mean of its windows';
the features' is the median, over the windows where a beat was measured.

Embeddings are computed once per encoder and windows, in batches, into a memory-mapped ``.npy``
file of the cache folder (``embeddings-<encoder>-<windows>.npy``), and read from there later.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from phewas.base.errors import InputError, PhewasError
from phewas.base.io import file_sha256, remove_stale_temporaries
from phewas.base.progress import progress

from .config import Net1DConfig, anyppg_config

RANDOM, FEATURES = "random", "features"
TSFM = ("moment", "chronos")  # general time-series foundation models: "moment:DIR", "chronos:DIR"
FEATURES_VERSION = 1  # raise when the pulse features change: cached feature embeddings are redone
CHUNK = 4096  # windows per write (and per features task)


class PulseFeatures:
    """The pulse features of a window (:func:`encoder.pulse.windows_features`) as an encoder."""

    aggregate = "median"

    def __init__(self):
        from .pulse import NAMES
        self.names = NAMES
        self.out_dim = len(NAMES)


def _run_architecture(run: Path):
    from .architecture import architecture_from_dict
    try:
        return architecture_from_dict(json.loads((run / "config.json").read_text())["ppg"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(run / "config.json", f"not a run's configuration ({type(err).__name__}: {err})") from None


def load_encoder(spec: str, *, architecture: Net1DConfig | None = None, seed: int = 0):
    """The encoder named by ``spec`` (a network in eval mode, or :class:`PulseFeatures`) and a
    description: ``kind``, ``path``, ``sha256``, ``key`` (what its embeddings are cached under),
    ``aggregate`` (mean or median over an example's windows) and, for a trained network, its
    ``architecture``. ``architecture`` is ``random``'s (default AnyPPG's) and a weights file's."""
    if spec == FEATURES:
        return PulseFeatures(), {"kind": "pulse features", "path": None, "sha256": None,
                                 "key": f"features-v{FEATURES_VERSION}", "aggregate": "median"}
    import hashlib

    import torch

    from .architecture import build_encoder
    from .checkpoints import load_anyppg, load_strict, read_state_dict
    if spec == RANDOM:
        torch.manual_seed(seed)
        arch = architecture or anyppg_config()
        model = build_encoder(arch)
        key = f"random-{seed}-{hashlib.sha256(repr(arch).encode()).hexdigest()[:8]}"
        return model.eval(), {"kind": "random", "seed": seed, "path": None, "sha256": None, "key": key,
                              "aggregate": "mean"}
    if spec.startswith(f"{RANDOM}:"):  # another family's architecture, random weights
        from .foundation import FAMILIES, build_foundation
        family = spec.split(":", 1)[1]
        if family not in FAMILIES:
            raise PhewasError(f"encoder {spec!r}: unknown family; random:{' or random:'.join(FAMILIES)}")
        torch.manual_seed(seed)
        return build_foundation(family).eval(), {"kind": f"random {family}", "seed": seed, "path": None,
                                                 "sha256": None, "key": f"random-{family}-{seed}",
                                                 "aggregate": "mean"}
    if spec.split(":", 1)[0] in TSFM:
        from .tsfm import load_tsfm
        model, desc = load_tsfm(spec)
        return model, desc | {"aggregate": "mean"}
    path = Path(spec)
    if path.is_dir():
        arch = _run_architecture(path)
        if (path / "ppg_encoder.pth").is_file():  # a pretraining run
            model = load_anyppg(path / "ppg_encoder.pth", arch)
            sha = file_sha256(path / "ppg_encoder.pth")
            return model.eval(), {"kind": "pretraining run", "path": str(path.resolve()), "sha256": sha,
                                  "key": sha[:16], "aggregate": "mean", "architecture": arch}
        best = path / "checkpoints" / "best.pt"
        if best.is_file():  # a fine-tuning run: the encoder of its stay classifier
            state = read_state_dict(best)
            weights = state.get("model", state)
            enc = {k.removeprefix("encoder."): v for k, v in weights.items() if k.startswith("encoder.")}
            if not enc:
                raise InputError(best, "holds no encoder weights (is this a `phewas finetune` run?)")
            model = build_encoder(arch)
            load_strict(model, enc, best)
            sha = file_sha256(best)
            return model.eval(), {"kind": "fine-tuning run", "path": str(path.resolve()), "sha256": sha,
                                  "key": sha[:16], "aggregate": "mean", "architecture": arch}
        raise PhewasError(f"{path}: neither a pretraining run (ppg_encoder.pth) nor a fine-tuning run "
                          "(checkpoints/best.pt)")
    if not path.is_file():
        raise InputError(path, "encoder not found: give a run folder, a weights file (AnyPPG, PaPaGei, Pulse-PPG), "
                         "moment:DIR, chronos:DIR, 'random', 'random:FAMILY' or 'features'")
    state = read_state_dict(path)
    sha = file_sha256(path)
    from .foundation import family_of, load_foundation
    if family_of(state) is not None:  # PaPaGei or Pulse-PPG
        model, desc = load_foundation(path, state)
        return model, {"kind": desc["model"], "path": str(path.resolve()), "sha256": sha, "key": sha[:16],
                       "aggregate": "mean", "input": desc["input"]}
    model = build_encoder(architecture or anyppg_config())
    load_strict(model, state, path)
    return model.eval(), {"kind": "weights", "path": str(path.resolve()), "sha256": sha, "key": sha[:16],
                          "aggregate": "mean"}


def embed(model, windows: np.ndarray, *, batch: int = 256, device: str = "auto", bf16: bool = True,
          out: np.ndarray | None = None, workers: int = 1) -> np.ndarray:
    """Embeddings ``[n, d]`` (float32) of ``[n, 1250]`` windows, in batches (bf16 on a GPU), into
    ``out`` when given (a memory-mapped array, say). :class:`PulseFeatures` runs in ``workers``
    processes."""
    n = len(windows)
    if out is None:
        out = np.zeros((n, model.out_dim), np.float32)
    if isinstance(model, PulseFeatures):
        from joblib import Parallel, delayed

        from .pulse import windows_features
        jobs = (delayed(windows_features)(np.asarray(windows[a:a + CHUNK], np.float64)) for a in range(0, n, CHUNK))
        parts = Parallel(n_jobs=workers, return_as="generator")(jobs)
        for a, part in zip(range(0, n, CHUNK), progress(parts, total=-(-n // CHUNK), desc="pulse features",
                                                        unit="chunk")):
            out[a:a + len(part)] = part
        return out
    import torch

    from .distributed import autocast, setup_distributed
    dev = setup_distributed(device).device
    model = model.to(dev).eval()
    with torch.no_grad():
        for a in progress(range(0, n, batch), desc="embed", unit="batch"):
            x = torch.from_numpy(np.ascontiguousarray(windows[a:a + batch], dtype=np.float32)).unsqueeze(1).to(dev)
            with autocast(dev, bf16):
                out[a:a + len(x)] = model(x).float().cpu().numpy()
    return out


def cached_embeddings(model, key: str, windows: np.ndarray, cache: Path, *, batch: int = 256,
                      device: str = "auto", workers: int = 1) -> np.ndarray:
    """The windows' embeddings from ``cache/embeddings-<key>.npy`` (memory-mapped), computed and
    written there first when absent. ``key`` names the encoder and the windows."""
    path = Path(cache) / f"embeddings-{key}.npy"
    if path.is_file():
        stored = np.load(path, mmap_mode="r")
        if stored.shape == (len(windows), model.out_dim):
            return stored
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(windows), model.out_dim))
        embed(model, windows, batch=batch, device=device, out=out, workers=workers)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            os.remove(tmp)
    return np.load(path, mmap_mode="r")
