"""What the probes see: the encoders named, each example's embedding pooled from its windows'
(cached) embeddings, and the cache folder."""

from __future__ import annotations

import os
import tempfile
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from phewas.base.errors import PhewasError

from .compare import model_names

CHUNK = 65536  # windows per chunk when examples' embeddings are pooled


def _encoder_name(spec: str) -> str:
    """An encoder's default name (:attr:`encoder.specs.EncoderSpec.name`)."""
    from encoder.specs import parse_spec  # torch-free

    try:
        return parse_spec(spec).name
    except ValueError as err:
        raise PhewasError(str(err)) from None


def encoder_names(encoders: list[str], names: list[str] | None) -> list[str]:
    if names is None:
        names = [_encoder_name(e) for e in encoders]
    return model_names([Path(e) for e in encoders], names)


def load_encoders(encoders: list[str], seed: int) -> list[tuple]:
    """``(model, description)`` per encoder named: ``random`` takes the architecture of the first
    trained encoder given (AnyPPG's without one)."""
    from encoder.embed import RANDOM, load_encoder  # torch: only when probing a network
    arch, loaded = None, []
    for e in encoders:
        if e != RANDOM:
            model, desc = load_encoder(e)
            arch = arch or desc.get("architecture") or None
            loaded.append((model, desc))
        else:
            loaded.append(None)
    return [x if x is not None else load_encoder(RANDOM, architecture=arch, seed=seed) for x in loaded]


def example_embeddings(emb: np.ndarray, example_of: np.ndarray, n: int, aggregate: str) -> np.ndarray:
    """float32 ``[n, d]``: each example's windows pooled (``mean``, or ``median`` ignoring NaN), read
    in chunks of the (memory-mapped) window embeddings, which are grouped by example."""
    starts = np.r_[0, np.flatnonzero(np.diff(example_of)) + 1]
    ends = np.r_[starts[1:], len(example_of)]
    out = np.zeros((n, emb.shape[1]), np.float32)
    i = 0
    while i < n:
        j = int(np.searchsorted(starts, starts[i] + CHUNK, side="left"))
        j = max(j, i + 1)
        block = np.asarray(emb[starts[i]:ends[j - 1]], np.float64)
        first, counts = starts[i:j] - starts[i], ends[i:j] - starts[i:j]
        if aggregate == "mean":
            out[i:j] = np.add.reduceat(block, first, axis=0) / counts[:, None]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no beat in any window: NaN, imputed later
                for c in np.unique(counts):
                    sel = np.flatnonzero(counts == c)
                    out[i + sel] = np.nanmedian(block[first[sel][:, None] + np.arange(c)], axis=1)
        i = j
    return out


def cache_folder(dataset: Path, cfg):
    """The cache folder, and a context that removes it at the end when it is a temporary one."""
    if cfg.cache is not None:
        return Path(cfg.cache), nullcontext()
    own = Path(dataset) / "cache"
    if os.access(own if own.exists() else Path(dataset), os.W_OK):
        return own, nullcontext()
    tmp = tempfile.TemporaryDirectory(prefix="phewas-probe-cache-")
    return Path(tmp.name), tmp
