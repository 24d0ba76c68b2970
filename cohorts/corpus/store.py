"""The pair store's format (``extract-pairs``) and its reader.

A pair store is a folder with:

* ``pairs_ppg.npy`` float16 ``[M, 1250]`` (125 Hz) and ``pairs_ecg.npy`` float16 ``[M, 5000]``
  (500 Hz): 10-s PPG-ECG pairs, z-scored, made by the profile that ``manifest.json``'s
  ``parameters.preprocess`` names (the format of a cohort's pairs);
* ``pairs_index.parquet``: one row per pair: ``row``, ``source`` (``pulsedb``, ``mesa``, ``cfs``,
  ``hsp``), ``subject``, ``record`` (the file, relative to the source folder), ``start`` (seconds
  from the recording's first sample; PulseDB: the segment's position times 10 s), ``split``
  (``pretrain_train``, ``pretrain_val``, ``pretrain_test``), ``invalid_frac_ppg`` and
  ``invalid_frac_ecg`` (the windows' flat shares, or invalid shares under ``robust``);
* ``records.parquet``: one row per converted file: its subject, split, windows, pairs, channels
  and rates, the windows dropped by reason, and whether its ECG was inverted;
* ``manifest.json``: the source, the settings, counts per split and the skipped files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from phewas.base.errors import PhewasError
from phewas.base.io import read_manifest

from ..preprocess import ECG, PPG

SPLITS = ("pretrain_train", "pretrain_val", "pretrain_test")
PAIR_ARRAYS = {"pairs_ppg": PPG.window, "pairs_ecg": ECG.window}
PAIR_SCHEMA = {"source": pl.String, "subject": pl.String, "record": pl.String, "start": pl.Float64,
               "split": pl.String, "invalid_frac_ppg": pl.Float32, "invalid_frac_ecg": pl.Float32}


class PairStore:
    """Read access to a pair store: :attr:`pair_index`, :attr:`pairs_ppg_array` and
    :attr:`pairs_ecg_array` (memory-mapped), named as a segment store's pairs, so that
    pretraining reads either."""

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / "manifest.json").exists() or read_manifest(self.path).get("command") != "extract-pairs":
            raise PhewasError(f"{self.path}: no pair store (run `phewas extract-pairs` first)")
        self.manifest = read_manifest(self.path)
        self.pair_index = pl.read_parquet(self.path / "pairs_index.parquet")
        self.pairs_ppg_array = np.load(self.path / "pairs_ppg.npy", mmap_mode="r")
        self.pairs_ecg_array = np.load(self.path / "pairs_ecg.npy", mmap_mode="r")

    @property
    def profile(self) -> str:
        return self.manifest["parameters"]["preprocess"]

    @property
    def source(self) -> str:
        return self.manifest["parameters"]["format"]


def open_pairs(path) -> PairStore:
    """Open a pair store written by ``extract-pairs``."""
    return PairStore(path)
