"""Any PPG encoder, frozen, as a function from windows to embeddings (``phewas probe``).

An encoder is named by a spec (:mod:`encoder.specs`): a pretraining run folder (its exported
``ppg_encoder.pth``), a fine-tuning run folder (the encoder of its best checkpoint), released
weights of a family (:mod:`encoder.families`: AnyPPG, PaPaGei-S, PaPaGei-P, Pulse-PPG), a general
time-series model's folder (``moment:DIR``, ``chronos:DIR``: :mod:`encoder.tsfm`), ``random``
(AnyPPG's architecture with seeded random weights, the floor; ``random:FAMILY`` for another
family's), or ``features``: the pulse features of ``phewas features`` (:mod:`encoder.pulse`) per
window, a hand-crafted row beside the networks. A network's example embedding is the mean of its
windows'; the features' is the median, over the windows where a beat was measured.

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

from .config import anyppg_config
from .specs import FEATURES, RANDOM, TSFM, parse_spec  # noqa: F401 (re-exported)

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
    from .families import architecture_from_dict
    try:
        return architecture_from_dict(json.loads((run / "config.json").read_text())["ppg"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(run / "config.json", f"not a run's configuration ({type(err).__name__}: {err})") from None


def load_encoder(spec: str, *, architecture=None, seed: int = 0):
    """The encoder named by ``spec`` (:mod:`encoder.specs`; a network in eval mode, or
    :class:`PulseFeatures`) and a description: ``kind``, ``path``, ``sha256``, ``key`` (what its
    embeddings are cached under), ``aggregate`` (mean or median over an example's windows) and,
    for a trained network, its ``architecture``. ``architecture`` is plain ``random``'s and an
    AnyPPG weights file's (default AnyPPG's released one)."""
    try:
        parsed = parse_spec(spec)
    except ValueError as err:
        raise PhewasError(str(err)) from None
    if parsed.kind == "features":
        return PulseFeatures(), {"kind": "pulse features", "path": None, "sha256": None,
                                 "key": f"features-v{FEATURES_VERSION}", "aggregate": "median"}
    import hashlib

    import torch

    from . import families
    from .checkpoints import load_anyppg
    from .weights_file import load_strict, read_state_dict
    if parsed.kind == "random":
        torch.manual_seed(seed)
        arch = families.FAMILIES[parsed.family].released() if parsed.family else (architecture or anyppg_config())
        model = families.build(arch)
        digest = hashlib.sha256(repr(arch).encode()).hexdigest()[:8]
        tag = f"{parsed.family}-{seed}-{digest}" if parsed.family else f"{seed}-{digest}"
        return model.eval(), {"kind": f"random {parsed.family}" if parsed.family else "random", "seed": seed,
                              "path": None, "sha256": None, "key": f"random-{tag}", "aggregate": "mean",
                              "architecture": arch}
    if parsed.kind == "tsfm":
        from .tsfm import load_tsfm
        model, desc = load_tsfm(spec)
        return model, desc | {"aggregate": "mean"}
    path = Path(parsed.path)
    if parsed.kind == "run":
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
            model = families.build(arch)
            load_strict(model, enc, best)
            sha = file_sha256(best)
            return model.eval(), {"kind": "fine-tuning run", "path": str(path.resolve()), "sha256": sha,
                                  "key": sha[:16], "aggregate": "mean", "architecture": arch}
        raise PhewasError(f"{path}: neither a pretraining run (ppg_encoder.pth) nor a fine-tuning run "
                          "(checkpoints/best.pt)")
    if not path.is_file():
        raise InputError(path, "encoder not found: give a run folder, a weights file (FAMILY:FILE or FILE for "
                         "AnyPPG, PaPaGei, Pulse-PPG), moment:DIR, chronos:DIR, 'random', 'random:FAMILY' or "
                         "'features'")
    state = read_state_dict(path)
    sha = file_sha256(path)
    model, arch, desc = families.load(path, parsed.family, state, architecture=architecture)
    return model, {"kind": desc["model"], "family": desc["family"], "path": str(path.resolve()), "sha256": sha,
                   "key": f"{sha[:16]}-{desc['family']}", "aggregate": "mean", "input": desc["input"],
                   "architecture": arch}


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
            x = torch.from_numpy(np.ascontiguousarray(windows[a:a + batch], dtype=np.float32)).unsqueeze(1)
            x = (x.pin_memory() if dev.type == "cuda" else x).to(dev, non_blocking=True)
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
