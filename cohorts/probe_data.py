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

Every example is made into the encoder's input by a window rule (:class:`WindowRule`): a
preprocessing profile (:mod:`cohorts.profiles`; ``anyppg`` by default, as ``extract-segments``)
and an input convention:

* ``windows`` (the default): an example of 10 s or more gives its non-overlapping 10-s windows
  (from the example's start; a shorter rest is dropped), each preprocessed and z-scored; one of
  ``min_seconds`` to 10 s is one window of its own length, zero-padded at the end to 10 s (the
  encoder pools over time, so a flat tail adds nothing but dilutes; documented, not hidden).
  An example's embedding is then the mean of its windows'.
* ``anyppg``: the AnyPPG release's convention (``downstream_evaluation/extract_emb.py``): the
  whole example, whatever its duration, preprocessed as one window and Fourier-resampled to 1,250
  samples, so that a 25-s example and an 8-s one alike fill the encoder's 10-s input (their time
  scale stretched or squeezed).

Under ``anyppg`` a window with a non-finite sample or more than 25% flat samples is dropped
(:mod:`cohorts.profiles.anyppg`); under ``robust`` the record is preprocessed once (invalid
samples marked and bridged, resampled to 125 Hz, band-passed 0.5-8 Hz, polarity corrected) and a
window more than ``max_invalid`` invalid is rejected. An example shorter than ``min_seconds``,
or with no usable window, is rejected and counted.

The preprocessed windows are written once to a cache folder (``DATASET/cache`` unless told
otherwise) as ``windows-<key>.npy`` (float16 ``[n, 1250]``, memory-mapped when read) with
``windows-<key>.parquet`` (each window's example); the key holds the dataset's files (their
sizes and times, ``labels.csv``'s checksum), the window rule and the preprocessing's version, so
a changed input or rule is preprocessed anew. Records are read once each for all their examples,
in ``workers`` processes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from joblib import Parallel, delayed
from scipy import signal as sps

from phewas.base.errors import InputError
from phewas.base.io import file_sha256, read_toml, remove_stale_temporaries
from phewas.base.progress import progress

from .preprocess import PPG, cut_windows, preprocess_record, preprocess_rows, zscore
from .profiles import DEFAULT_PROFILE, PROFILES
from .profiles import anyppg as release

KINDS = ("regression", "binary", "multiclass")
OFFICIAL_SPLITS = ("train", "test")
INPUTS = ("windows", "anyppg")
PREPROCESSING = 2  # raise when preprocessing changes what it writes: older caches are redone
ROWS_PER_TASK = 2048  # rows of windows.npy per preprocessing task
RECORDS_PER_TASK = 16


@dataclass(frozen=True)
class WindowRule:
    """How an example becomes encoder input (see the module's text): the preprocessing profile,
    the input convention, and the robust profile's ``max_invalid``; examples shorter than
    ``min_seconds`` are rejected."""

    preprocess: str = DEFAULT_PROFILE
    input: str = "windows"
    max_invalid: float = 0.25
    min_seconds: float = 5.0

    def __post_init__(self):
        if self.preprocess not in PROFILES:
            raise ValueError(f"preprocess must be one of {PROFILES}, got {self.preprocess!r}")
        if self.input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {self.input!r}")


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
        ``[n_windows, 1250]`` (float16, memory-mapped from the cache), grouped by example in the
        examples' order.
    example_of : numpy.ndarray
        Each window's row in :attr:`labels`.
    rejected : dict
        Examples left out, by reason.
    key : str
        Identifies the windows (dataset files and window rule): embeddings of them are cached
        under it.
    """

    name: str
    tasks: dict
    labels: pl.DataFrame
    windows: np.ndarray
    example_of: np.ndarray
    rejected: dict = field(default_factory=dict)
    key: str = ""
    unused_rows: int = 0  # rows of windows.npy that no row of labels.csv names


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
            bad = df.with_row_index("i").filter(~pl.col(c).is_finite())
            if bad.height:  # polars reads "nan" and "inf" as numbers
                raise InputError(path, f"{bad[c][0]} is not a finite number (leave the cell empty for no label)",
                                 row=int(bad["i"][0]) + 2, column=c)
    if "split" in df.columns:
        bad = df.with_row_index("i").filter(pl.col("split").is_not_null() & ~pl.col("split").is_in(OFFICIAL_SPLITS))
        if bad.height:
            raise InputError(path, f"split {bad['split'][0]!r}: one of {', '.join(OFFICIAL_SPLITS)}",
                             row=int(bad["i"][0]) + 2, column="split")
    return df


def example_windows(x: np.ndarray, fs: float, start_s: float | None, duration_s: float | None,
                    rule: WindowRule = WindowRule(), prepared=None) -> tuple[np.ndarray, str | None]:
    """The encoder input of one example (``[k, 1250]`` float32, z-scored) by ``rule``, and, if
    none, why. ``x`` is the whole record at ``fs``; ``prepared`` may pass its ``(y, bad)`` from
    :func:`~cohorts.preprocess.preprocess_record` under the robust profile (a record is
    preprocessed once for all its examples)."""
    a = int(round((start_s or 0.0) * fs))
    b = len(x) if duration_s is None else min(len(x), a + int(round(duration_s * fs)))
    none = np.zeros((0, PPG.window), np.float32)
    if b - a < rule.min_seconds * fs:
        return none, "shorter than min_seconds"
    if rule.preprocess == "anyppg":
        return _anyppg_example(np.asarray(x[a:b], np.float32), fs, rule)
    y, bad = prepared if prepared is not None else preprocess_record(np.asarray(x, np.float64), fs, PPG, "ppg")[:2]
    lo, hi = int(round(a * PPG.fs / fs)), min(len(y), int(round(b * PPG.fs / fs)))
    if hi - lo >= PPG.window and rule.input == "windows":
        starts = np.arange(lo, hi - PPG.window + 1, PPG.window)
        w, _, _ = cut_windows(y, bad, PPG, starts, rule.max_invalid)
        return w.astype(np.float32), (None if len(w) else "every window too invalid or flat")
    seg, seg_bad = y[lo:hi], bad[lo:hi]
    if seg_bad.mean() > rule.max_invalid or seg.std() <= 1e-8:
        return none, "every window too invalid or flat"
    if rule.input == "anyppg":
        return zscore(sps.resample(seg, PPG.window)[None, :]).astype(np.float32), None
    out = np.zeros((1, PPG.window), np.float32)
    out[0, :len(seg)] = zscore(seg[None, :])[0]
    return out, None


def _anyppg_example(seg: np.ndarray, fs: float, rule: WindowRule) -> tuple[np.ndarray, str | None]:
    """:func:`example_windows` under the ``anyppg`` profile, on the example's own samples."""
    none = np.zeros((0, PPG.window), np.float32)
    if rule.input == "anyppg":
        keep, w, _ = release.whole_examples(seg[None, :], fs)
        return (w, None) if keep[0] else (none, "non-finite or flat")
    if len(seg) >= int(release.WINDOW_S * fs):
        kept = release.ppg_windows(seg, fs)
        return (kept.ppg, None) if len(kept.index) else (none, "every window non-finite or flat")
    keep, _, _ = release.screen(seg[None, :], fs)
    if not keep[0]:
        return none, "non-finite or flat"
    w = release.prepare_ppg(seg[None, :], fs)[:, :PPG.window]
    out = np.zeros((1, PPG.window), np.float32)
    out[0, :w.shape[1]] = w[0]
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


def _cut(x_len: int, fs: float, start_s, duration_s, prepared, rule: WindowRule):
    """``example_windows`` on a record already preprocessed (``prepared``) of ``x_len`` samples."""
    return example_windows(np.empty(x_len), fs, start_s, duration_s, rule, prepared)


def _prepare_rows(array_path: Path, fs: float, rows: list[tuple], rule: WindowRule):
    """Windows of examples that are rows of ``windows.npy``: ``rows`` holds ``(example, row,
    start_s, duration_s)``. Returns ``(examples kept, windows float16, windows per example,
    reasons of the rejected)``."""
    array = np.load(array_path, mmap_mode="r")
    X = np.asarray(array[[r[1] for r in rows]], dtype=np.float64)
    if rule.preprocess == "anyppg":
        return _collect((example, example_windows(X[i], fs, a, d, rule)) for i, (example, _, a, d) in enumerate(rows))
    Y, bad = preprocess_rows(X, fs, PPG)
    return _collect((example, _cut(array.shape[1], fs, a, d, (Y[i], bad[i]), rule))
                    for i, (example, _, a, d) in enumerate(rows))


def _prepare_records(folder: Path, channel, groups: list[tuple[str, list[tuple]]], rule: WindowRule):
    """Windows of examples that are parts of WFDB records: ``groups`` holds ``(record, [(example,
    start_s, duration_s), ...])``; each record is read (and, under the robust profile,
    preprocessed) once."""
    def each():
        for record, examples in groups:
            x, fs = _read_record(folder, record, channel)
            x = np.asarray(x, np.float64)
            if rule.preprocess == "anyppg":
                for example, a, d in examples:
                    yield example, example_windows(x, fs, a, d, rule)
                continue
            prepared = preprocess_record(x, fs, PPG, "ppg")[:2]
            for example, a, d in examples:
                yield example, _cut(len(x), fs, a, d, prepared, rule)
    return _collect(each())


def _collect(results):
    kept, windows, counts, reasons = [], [], [], []
    for example, (w, why) in results:
        if why:
            reasons.append(why)
            continue
        kept.append(example)
        windows.append(w.astype(np.float16))
        counts.append(len(w))
    stacked = np.vstack(windows) if windows else np.zeros((0, PPG.window), np.float16)
    return kept, stacked, counts, reasons


def dataset_key(folder: Path, spec: dict, df: pl.DataFrame, rule: WindowRule) -> str:
    """What identifies a dataset's windows: its files and the window rule (see the module's text)."""
    parts = [PREPROCESSING, asdict(rule), (folder / "dataset.toml").read_text(),
             file_sha256(folder / "labels.csv")]
    signals = [folder / "windows.npy"] if "window" in df.columns else \
        [folder / f"{r}{ext}" for r in df["record"].unique(maintain_order=True).to_list() for ext in (".hea", ".dat")]
    for f in signals:
        st = f.stat() if f.exists() else None
        parts.append([f.name, st.st_size if st else None, st.st_mtime_ns if st else None])
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def load_probe_dataset(folder, *, rule: WindowRule | None = None, cache=None, workers: int = 1) -> ProbeDataset:
    """Read a dataset folder (see the module's description) and its windows by ``rule`` (default
    :class:`WindowRule`'s): from the cache folder (default ``DATASET/cache``) when they are
    there, else preprocessed now and written there."""
    rule = rule or WindowRule()
    folder = Path(folder)
    spec = read_spec(folder)
    tasks = {n: t["kind"] for n, t in spec["tasks"].items()}
    df = read_labels(folder, tasks)
    unused = _check_window_rows(folder, spec, df) if "window" in df.columns else 0
    key = dataset_key(folder, spec, df, rule)
    cache = Path(cache) if cache is not None else folder / "cache"
    stem = cache / f"windows-{key}"
    if not (stem.with_suffix(".npy").is_file() and stem.with_suffix(".parquet").is_file()):
        _prepare(folder, spec, df, stem, rule, workers)
    index = pl.read_parquet(stem.with_suffix(".parquet"))
    meta = json.loads(stem.with_suffix(".json").read_text())
    kept = index["example"].unique(maintain_order=True).to_list()
    position = {e: i for i, e in enumerate(kept)}
    labels = (df.with_row_index("example").filter(pl.col("example").is_in(kept))
              .select("example", *(pl.col(c) if c in df.columns else pl.lit(None, pl.String).alias(c)
                                   for c in ("subject", "split")), *tasks))
    example_of = np.array([position[e] for e in index["example"].to_list()], dtype=np.int64)
    return ProbeDataset(name=str(spec.get("name", folder.name)), tasks=tasks, labels=labels,
                        windows=np.load(stem.with_suffix(".npy"), mmap_mode="r"), example_of=example_of,
                        rejected=meta["rejected"], key=key, unused_rows=unused)


def check_classes(folder: Path, labels: pl.DataFrame, tasks: dict) -> None:
    """Each class task of ``tasks`` has two classes among the labelled examples of ``labels``
    (the examples kept); else an error naming the column of ``labels.csv``."""
    for t in (t for t, k in tasks.items() if k != "regression"):
        classes = labels[t].drop_nulls().unique().sort().to_list()
        if len(classes) < 2:
            found = f"one class ({classes[0]!r})" if classes else "no labelled example"
            raise InputError(Path(folder) / "labels.csv", f"task {t!r} ({tasks[t]}) has {found} among the examples "
                             "kept; a class task needs two", column=t)


def _check_window_rows(folder: Path, spec: dict, df: pl.DataFrame) -> int:
    """Check ``windows.npy`` (``[n, samples]`` of numbers) and that every ``window`` of
    ``labels.csv`` is one of its rows; returns how many of its rows no example names."""
    if "fs" not in spec:
        raise InputError(folder / "dataset.toml", "fs is needed for windows.npy")
    path = folder / "windows.npy"
    try:
        arr = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise InputError(path, "not found (labels.csv has a 'window' column)") from None
    except (OSError, ValueError, EOFError) as err:
        raise InputError(path, f"not readable ({err})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[1] < 1:
        raise InputError(path, f"has shape {getattr(arr, 'shape', '?')}; expected [windows, samples]")
    if arr.dtype.kind not in "biuf":
        raise InputError(path, f"holds {arr.dtype} values; expected numbers (float32)")
    n = arr.shape[0]
    rows = df["window"].cast(pl.Int64, strict=False)
    bad = df.with_row_index("i").filter(rows.is_null() | (rows < 0) | (rows >= n))
    if bad.height:
        raise InputError(folder / "labels.csv", f"window {bad['window'][0]!r} is not a row of windows.npy ({n} rows)",
                         row=int(bad["i"][0]) + 2, column="window")
    return n - rows.n_unique()


def _prepare(folder: Path, spec: dict, df: pl.DataFrame, stem: Path, rule: WindowRule, workers: int) -> None:
    """Preprocess every example and write the cache files ``stem.npy/.parquet/.json``, atomically."""
    start = df["start_s"].to_list() if "start_s" in df.columns else [None] * df.height
    duration = df["duration_s"].to_list() if "duration_s" in df.columns else [None] * df.height
    if "window" in df.columns:
        rows = list(zip(range(df.height), df["window"].cast(pl.Int64).to_list(), start, duration))
        tasks = [delayed(_prepare_rows)(folder / "windows.npy", float(spec["fs"]), rows[i:i + ROWS_PER_TASK], rule)
                 for i in range(0, len(rows), ROWS_PER_TASK)]
    else:
        groups: dict[str, list] = {}
        for i, (record, a, d) in enumerate(zip(df["record"].to_list(), start, duration)):
            groups.setdefault(record, []).append((i, a, d))
        items = list(groups.items())
        tasks = [delayed(_prepare_records)(folder, spec.get("channel"), items[i:i + RECORDS_PER_TASK], rule)
                 for i in range(0, len(items), RECORDS_PER_TASK)]
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(stem.parent, f"cannot create the cache folder ({err.strerror}); give another with "
                         "--cache") from None
    remove_stale_temporaries(stem)  # parts that a killed run left
    parts = stem.with_name(f".{stem.name}.tmp-{os.getpid()}")
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir()
    try:
        kept, counts, rejected, n = [], [], {}, 0
        results = Parallel(n_jobs=workers, return_as="generator")(tasks)
        for k, (ex, w, c, reasons) in enumerate(progress(results, total=len(tasks), desc="preprocess",
                                                         unit="task")):
            np.save(parts / f"{k:06d}.npy", w)
            kept += ex
            counts += c
            n += len(w)
            for why in reasons:
                rejected[why] = rejected.get(why, 0) + 1
        if not kept:
            raise InputError(folder / "labels.csv", f"no example gave a usable window ({rejected})")
        out = np.lib.format.open_memmap(parts / "windows.npy", mode="w+", dtype=np.float16, shape=(n, PPG.window))
        pos = 0
        for k in range(len(tasks)):
            w = np.load(parts / f"{k:06d}.npy")
            out[pos:pos + len(w)] = w
            pos += len(w)
        out.flush()
        del out
        pl.DataFrame({"example": np.repeat(np.asarray(kept, np.int64), counts)}).write_parquet(parts / "index.parquet")
        (parts / "meta.json").write_text(json.dumps({"rejected": rejected, "windows": n, "examples": len(kept)}))
        # the three files take their names last, the data first: a reader finds all or none
        for src, ext in (("windows.npy", ".npy"), ("meta.json", ".json"), ("index.parquet", ".parquet")):
            os.replace(parts / src, stem.with_suffix(ext))
    finally:
        shutil.rmtree(parts, ignore_errors=True)
