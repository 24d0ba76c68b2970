"""Labelled PPG datasets for linear probing (``phewas probe``), in one simple format.

A dataset is a folder holding:

* ``dataset.toml``: ``name``; ``fs`` (Hz, for ``windows.npy``); optional ``channel`` (the WFDB
  signal to read; default the first); one ``[tasks.NAME]`` table per task with ``kind`` =
  ``"regression"``, ``"binary"`` or ``"multiclass"``;
* ``labels.csv``: one row per example. ``record`` (a WFDB record path relative to the folder,
  without extension) or ``window`` (a row of ``windows.npy``); optional ``start_s`` and
  ``duration_s`` (a part of the record; default all of it); optional ``subject`` and ``split``
  (``train``/``test``, the dataset's official split); one column per task (empty = unlabelled);
* the signals: WFDB records, or ``windows.npy`` (``[n, samples]`` at ``fs``).

Every example's signal is preprocessed as ``extract-segments`` does (invalid samples marked and
bridged, resampled to 125 Hz, band-passed 0.5-8 Hz, polarity corrected), then cut into 10-s
windows, each z-scored and rejected when more than ``max_invalid`` of it was invalid. An example
of 10 s or more gives its non-overlapping 10-s windows (stride 10 s; a shorter rest is dropped);
one of ``min_seconds`` to 10 s is z-scored and zero-padded at the end to 10 s (the encoder pools
over time, so a flat tail adds nothing but dilutes; documented, not hidden); a shorter one is
rejected and counted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from phewas.base.errors import InputError
from phewas.base.io import read_toml

from .preprocess import PPG, cut_windows, preprocess_record, zscore

KINDS = ("regression", "binary", "multiclass")
OFFICIAL_SPLITS = ("train", "test")


@dataclass
class ProbeDataset:
    """A dataset read and preprocessed.

    Attributes
    ----------
    name : str
    tasks : dict
        Task name -> kind.
    labels : polars.DataFrame
        One row per example kept: ``example`` (row of labels.csv), ``subject`` (null if unknown),
        ``split`` (null if none), and the task columns.
    windows : numpy.ndarray
        float32 ``[n_windows, 1250]``.
    example_of : numpy.ndarray
        Each window's row in :attr:`labels`.
    rejected : dict
        Examples left out, by reason.
    """

    name: str
    tasks: dict
    labels: pl.DataFrame
    windows: np.ndarray
    example_of: np.ndarray
    rejected: dict = field(default_factory=dict)


def read_spec(folder: Path) -> dict:
    """``dataset.toml``, checked."""
    path = folder / "dataset.toml"
    spec = read_toml(path, "dataset description")
    tasks = spec.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise InputError(path, "needs at least one [tasks.NAME] table with kind = regression|binary|multiclass")
    for name, t in tasks.items():
        kind = t.get("kind") if isinstance(t, dict) else None
        if kind not in KINDS:
            raise InputError(path, f"[tasks.{name}] kind {kind!r}: one of {', '.join(KINDS)}")
    if "fs" in spec and not (isinstance(spec["fs"], (int, float)) and spec["fs"] > 0):
        raise InputError(path, f"fs must be a positive number of Hz, found {spec['fs']!r}")
    return spec


def read_labels(folder: Path, tasks: dict) -> pl.DataFrame:
    """``labels.csv`` as text columns, checked: the source column, task columns, splits, numbers."""
    path = folder / "labels.csv"
    if not path.is_file():
        raise InputError(path, "not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise InputError(path, "empty")
    header, body = rows[0], rows[1:]
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise InputError(path, f"{len(r)} fields where the header has {len(header)}", row=i)
    df = pl.DataFrame({c: [r[j] or None for r in body] for j, c in enumerate(header)},
                      schema=dict.fromkeys(header, pl.String))
    sources = [c for c in ("record", "window") if c in df.columns]
    if len(sources) != 1:
        raise InputError(path, "needs exactly one of the columns 'record' (WFDB) or 'window' (windows.npy)")
    missing = [t for t in tasks if t not in df.columns]
    if missing:
        raise InputError(path, f"no column for task {missing[0]!r} (dataset.toml names it)")
    for c in ("start_s", "duration_s", *[t for t, k in tasks.items() if k == "regression"]):
        if c in df.columns:
            bad = df.with_row_index("i").filter(pl.col(c).is_not_null() & pl.col(c).cast(pl.Float64, strict=False)
                                                .is_null())
            if bad.height:
                raise InputError(path, f"not a number: {bad[c][0]!r}", row=int(bad["i"][0]) + 2, column=c)
            df = df.with_columns(pl.col(c).cast(pl.Float64))
    if "split" in df.columns:
        bad = df.with_row_index("i").filter(pl.col("split").is_not_null() & ~pl.col("split").is_in(OFFICIAL_SPLITS))
        if bad.height:
            raise InputError(path, f"split {bad['split'][0]!r}: one of {', '.join(OFFICIAL_SPLITS)}",
                             row=int(bad["i"][0]) + 2, column="split")
    return df


def example_windows(x: np.ndarray, fs: float, start_s: float | None, duration_s: float | None,
                    max_invalid: float, min_seconds: float, prepared=None) -> tuple[np.ndarray, str | None]:
    """The 10-s windows of one example (``[k, 1250]``, z-scored) and, if none, why. ``x`` is the
    whole record at ``fs``; ``prepared`` may pass its ``(y, bad)`` from
    :func:`~cohorts.preprocess.preprocess_record` (a record is preprocessed once for all its
    examples)."""
    a = int(round((start_s or 0.0) * fs))
    b = len(x) if duration_s is None else min(len(x), a + int(round(duration_s * fs)))
    if b - a < min_seconds * fs:
        return np.zeros((0, PPG.window), np.float32), "shorter than min_seconds"
    y, bad = prepared if prepared is not None else preprocess_record(np.asarray(x, np.float64), fs, PPG, "ppg")[:2]
    lo, hi = int(round(a * PPG.fs / fs)), min(len(y), int(round(b * PPG.fs / fs)))
    if hi - lo >= PPG.window:
        starts = np.arange(lo, hi - PPG.window + 1, PPG.window)
        w, _, _ = cut_windows(y, bad, PPG, starts, max_invalid)
        return w.astype(np.float32), (None if len(w) else "every window too invalid or flat")
    seg, seg_bad = y[lo:hi], bad[lo:hi]
    if seg_bad.mean() > max_invalid or seg.std() <= 1e-8:
        return np.zeros((0, PPG.window), np.float32), "every window too invalid or flat"
    out = np.zeros((1, PPG.window), np.float32)
    out[0, :len(seg)] = zscore(seg[None, :])[0]
    return out, None


def _read_record(folder: Path, record: str, channel: str | None) -> tuple[np.ndarray, float]:
    import wfdb
    path = folder / record
    try:
        rec = wfdb.rdrecord(str(path))
    except (OSError, ValueError) as err:
        raise InputError(path.with_suffix(".hea"), f"unreadable WFDB record ({err})") from None
    names = list(rec.sig_name or [])
    j = 0
    if channel is not None:
        if channel not in names:
            raise InputError(path.with_suffix(".hea"), f"no signal {channel!r} (signals: {', '.join(names)})")
        j = names.index(channel)
    return rec.p_signal[:, j], float(rec.fs)


def load_probe_dataset(folder, *, max_invalid: float = 0.25, min_seconds: float = 5.0) -> ProbeDataset:
    """Read a dataset folder (see the module's description) and preprocess its examples."""
    folder = Path(folder)
    spec = read_spec(folder)
    tasks = {n: t["kind"] for n, t in spec["tasks"].items()}
    df = read_labels(folder, tasks)
    array = None
    if "window" in df.columns:
        if "fs" not in spec:
            raise InputError(folder / "dataset.toml", "fs is needed for windows.npy")
        try:
            array = np.load(folder / "windows.npy", mmap_mode="r")
        except (OSError, ValueError) as err:
            raise InputError(folder / "windows.npy", f"not readable ({err})") from None
    windows, example_of, kept, rejected = [], [], [], {}
    cache: dict = {}
    for i, row in enumerate(df.iter_rows(named=True)):
        if array is not None:
            try:
                k = int(row["window"])
                x, fs, prepared = array[k], float(spec["fs"]), None
            except (TypeError, ValueError, IndexError):
                raise InputError(folder / "labels.csv", f"window {row['window']!r} is not a row of windows.npy "
                                 f"({len(array)} rows)", row=i + 2, column="window") from None
        else:
            if row["record"] not in cache:  # one record held, preprocessed once for its examples
                x, fs = _read_record(folder, row["record"], spec.get("channel"))
                cache = {row["record"]: (x, fs, preprocess_record(np.asarray(x, np.float64), fs, PPG, "ppg")[:2])}
            x, fs, prepared = cache[row["record"]]
        w, why = example_windows(x, fs, row.get("start_s"), row.get("duration_s"), max_invalid, min_seconds,
                                 prepared)
        if why:
            rejected[why] = rejected.get(why, 0) + 1
            continue
        windows.append(w)
        example_of.append(np.full(len(w), len(kept)))
        kept.append(i)
    if not kept:
        raise InputError(folder / "labels.csv", f"no example gave a usable window ({rejected})")
    labels = (df.with_row_index("example").filter(pl.col("example").is_in(kept))
              .select("example", *(pl.col(c) if c in df.columns else pl.lit(None, pl.String).alias(c)
                                   for c in ("subject", "split")), *tasks))
    return ProbeDataset(name=str(spec.get("name", folder.name)), tasks=tasks, labels=labels,
                        windows=np.vstack(windows), example_of=np.concatenate(example_of), rejected=rejected)
