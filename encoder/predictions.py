"""The predictions format that ``predict`` and ``features`` write and ``report`` and ``compare`` read.

``predictions.parquet``: ``stay_id``, ``n_windows`` (Int32, distinct windows behind the stay's
scores; 0 where the store has none) and one Float32 probability column per phecode;
``predictions.manifest.json`` beside it records the file's checksum, the cohort and split, the
counts and the versions.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from phewas.base.io import file_sha256, versions, write_json

WINDOWS = "n_windows"


def predictions_frame(stay_ids, n_windows, probs: np.ndarray, phecodes: list[str]) -> pl.DataFrame:
    """``stay_id``, ``n_windows`` and a Float32 column per phecode (``probs`` ``[n, len(phecodes)]``)."""
    return pl.DataFrame({"stay_id": stay_ids, WINDOWS: pl.Series(n_windows, dtype=pl.Int32),
                         **{p: np.asarray(probs[:, j], dtype=np.float32) for j, p in enumerate(phecodes)}})


def write_predictions_manifest(folder, *, command: str, cohort, split: str, stays: int, phecodes: int,
                               stays_without_windows: int, **extra) -> dict:
    """Write ``folder/predictions.manifest.json`` beside ``folder/predictions.parquet`` (its
    checksum, the cohort and split, counts, versions and ``extra``); returns it."""
    folder = Path(folder)
    manifest = {"command": command, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "predictions_sha256": file_sha256(folder / "predictions.parquet"),
                "cohort": str(Path(cohort).resolve()), "split": split, "stays": stays, "phecodes": phecodes,
                "stays_without_windows_given_prior": stays_without_windows, **extra, "versions": versions()}
    write_json(folder / "predictions.manifest.json", manifest)
    return manifest
