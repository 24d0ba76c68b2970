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

from phewas.base.errors import InputError
from phewas.base.io import file_sha256, versions, write_json

WINDOWS = "n_windows"


def predictions_frame(stay_ids, n_windows, probs: np.ndarray, phecodes: list[str]) -> pl.DataFrame:
    """``stay_id``, ``n_windows`` and a Float32 column per phecode (``probs`` ``[n, len(phecodes)]``)."""
    return pl.DataFrame({"stay_id": stay_ids, WINDOWS: pl.Series(n_windows, dtype=pl.Int32),
                         **{p: np.asarray(probs[:, j], dtype=np.float32) for j, p in enumerate(phecodes)}})


def read_predictions(path, phecodes, stay_ids) -> tuple[pl.DataFrame, list[str]]:
    """Read and check ``predictions.parquet``: a Parquet file with a text ``stay_id`` naming each of
    the cohort's ``stay_ids`` at most once, numeric score columns that are all among the cohort's
    ``phecodes``, and optionally ``n_windows``. Returns the frame and its phecode columns; a file
    that is not so is an :class:`~phewas.base.errors.InputError` naming it (and the column)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "not found")
    if not path.is_file():
        raise InputError(path, "is a folder; --predictions names a predictions.parquet file")
    try:
        pred = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise InputError(path, f"not a Parquet file ({str(err).splitlines()[0]})") from None
    if "stay_id" not in pred.columns:
        raise InputError(path, f"no 'stay_id' column; columns found: {', '.join(pred.columns[:8])}")
    if pred["stay_id"].dtype != pl.String:
        raise InputError(path, f"stay_id must be text (the cohort's CSNs), found {pred['stay_id'].dtype}",
                         column="stay_id")
    scored = [c for c in pred.columns if c not in ("stay_id", WINDOWS)]
    unknown = [c for c in scored if c not in phecodes]
    if unknown:
        raise InputError(path, f"{len(unknown)} columns are not phecodes of the cohort: "
                         f"{', '.join(map(repr, unknown[:5]))}")
    if not scored:
        raise InputError(path, "no phecode columns")
    for c in scored:
        if not pred[c].dtype.is_numeric():
            raise InputError(path, f"scores must be numbers, found {pred[c].dtype}", column=c)
    if pred["stay_id"].is_duplicated().any():
        raise InputError(path, f"{int(pred['stay_id'].is_duplicated().sum())} rows repeat a stay_id",
                         column="stay_id")
    stray = pred.filter(~pl.col("stay_id").is_in(pl.Series(stay_ids).implode())).height
    if stray:
        raise InputError(path, f"{stray} stays are not in the cohort's stays.parquet", column="stay_id")
    return pred, scored


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
