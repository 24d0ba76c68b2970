"""The segment store's format: its files, writing a part of one, joining parts, and reading.

A store (``COHORT/segments/``) and each part of one (a resumable chunk of an extraction, or a
shard) hold the same files:

* ``ppg.npy`` float16 ``[N, 1250]`` and ``ppg_index.parquet`` (one row per window: ``row``,
  ``stay_id``, ``split``, ``window``, ``start``, ``record``, ``invalid_frac``);
* ``pairs_ppg.npy`` ``[M, 1250]``, ``pairs_ecg.npy`` ``[M, 5000]`` and ``pairs_index.parquet``
  (``row``, ``stay_id``, ``split``, ``start``, ``ppg_record``, ``ecg_record``,
  ``invalid_frac_ppg``, ``invalid_frac_ecg``);
* ``stays.parquet``: per stay, windows kept, valid candidates and pairs;
* a store has ``manifest.json``; a chunk has ``bad.json`` (its unreadable records).

``row`` numbers a part's own rows, so parts join by concatenation (:func:`assemble`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from phewas.base.errors import PhewasError
from phewas.base.io import read_manifest

from .preprocess import ECG, PPG

STORE = "segments"
ARRAYS = {"ppg": PPG.window, "pairs_ppg": PPG.window, "pairs_ecg": ECG.window}  # file -> window width
INDEX_SCHEMA = {
    "ppg_index": {"stay_id": pl.String, "split": pl.String, "window": pl.Int32, "start_us": pl.Int64,
                  "record": pl.String, "invalid_frac": pl.Float32},
    "pairs_index": {"stay_id": pl.String, "split": pl.String, "start_us": pl.Int64, "ppg_record": pl.String,
                    "ecg_record": pl.String, "invalid_frac_ppg": pl.Float32, "invalid_frac_ecg": pl.Float32},
    "stays": {"stay_id": pl.String, "split": pl.String, "n_ppg_windows": pl.Int32, "n_candidates": pl.Int32,
              "n_pairs": pl.Int32},
}


def write_part(folder: Path, arrays: dict[str, np.ndarray], rows: dict[str, list[tuple]]) -> None:
    """Write a part's arrays (``ARRAYS`` names) and tables (``INDEX_SCHEMA`` names, rows as tuples
    in the schema's order, times as microseconds since 1970) into ``folder``."""
    for name, width in ARRAYS.items():
        np.save(folder / f"{name}.npy", arrays[name] if len(arrays[name]) else np.zeros((0, width), np.float16))
    to_dt = pl.from_epoch(pl.col("start_us"), time_unit="us").alias("start")
    for name, schema in INDEX_SCHEMA.items():
        df = pl.DataFrame(rows[name], schema=schema, orient="row")
        if name != "stays":
            df = df.with_row_index("row").with_columns(to_dt).drop("start_us")
        df.write_parquet(folder / f"{name}.parquet")


def concat_arrays(parts: list[Path], file: str, width: int, dest: Path) -> None:
    """``dest/file``: the float16 ``[n, width]`` arrays ``part/file`` of ``parts`` one after the
    other, written through a memory map (one part in memory at a time)."""
    sizes = [np.load(p / file, mmap_mode="r").shape[0] for p in parts]
    out = np.lib.format.open_memmap(dest / file, mode="w+", dtype=np.float16, shape=(sum(sizes), width))
    pos = 0
    for p, n in zip(parts, sizes):
        out[pos:pos + n] = np.load(p / file)
        pos += n
    out.flush()
    del out


def assemble(parts: list[Path], dest: Path, per_stay: int, bad: list) -> dict:
    """Concatenate parts into a store's files at ``dest`` (memory-mapped writes); returns its
    counts. ``bad``: the parts' unreadable records, ``(record, reason)``."""
    def cat(name):
        return pl.concat([pl.read_parquet(p / f"{name}.parquet") for p in parts]) if parts else None

    for name, width in ARRAYS.items():
        concat_arrays(parts, f"{name}.npy", width, dest)
    ppg_idx, pair_idx, stays = cat("ppg_index"), cat("pairs_index"), cat("stays")
    ppg_idx.drop("row").with_row_index("row").write_parquet(dest / "ppg_index.parquet")
    pair_idx.drop("row").with_row_index("row").write_parquet(dest / "pairs_index.parquet")
    stays.write_parquet(dest / "stays.parquet")
    return {"ppg_windows": ppg_idx.height, "pairs": pair_idx.height, "stays": stays.height,
            "stays_without_windows": int((stays["n_ppg_windows"] == 0).sum()),
            "stays_short_of_per_stay": int(((stays["n_ppg_windows"] > 0) &
                                            (stays["n_ppg_windows"] < per_stay)).sum()),
            "stays_with_pairs": int((stays["n_pairs"] > 0).sum()),
            "bad_records": {"count": len(bad), "records": [b[0] for b in bad], "reasons": [b[1] for b in bad]}}


class SegmentStore:
    """Read access to a segment store; the only way other parts read windows.

    Attributes
    ----------
    index : polars.DataFrame
        One row per PPG window (``row``, ``stay_id``, ``split``, ``window``, ``start``, ``record``,
        ``invalid_frac``); ``row`` indexes :attr:`ppg_array`.
    pair_index : polars.DataFrame
        One row per PPG-ECG pair; ``row`` indexes :attr:`pairs_ppg_array` / :attr:`pairs_ecg_array`.
    stays : polars.DataFrame
        Per stay: ``n_ppg_windows``, ``n_candidates``, ``n_pairs``.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / "manifest.json").exists():
            raise PhewasError(f"{self.path}: no segment store (run `phewas extract-segments` first)")
        self.manifest = read_manifest(self.path)
        self.index = pl.read_parquet(self.path / "ppg_index.parquet")
        self.pair_index = pl.read_parquet(self.path / "pairs_index.parquet")
        self.stays = pl.read_parquet(self.path / "stays.parquet")
        self.ppg_array = np.load(self.path / "ppg.npy", mmap_mode="r")
        self.pairs_ppg_array = np.load(self.path / "pairs_ppg.npy", mmap_mode="r")
        self.pairs_ecg_array = np.load(self.path / "pairs_ecg.npy", mmap_mode="r")
        self._ppg_rows = _row_ranges(self.index)
        self._pair_rows = _row_ranges(self.pair_index)

    @property
    def profile(self) -> str:
        """The preprocessing profile that made the windows (:mod:`cohorts.profiles`); stores
        made before profiles existed were made by what is now ``robust``."""
        return self.manifest["parameters"].get("preprocess", "robust")

    def ppg_rows(self, stay_id: str) -> tuple[int, int]:
        return self._ppg_rows.get(str(stay_id), (0, 0))

    def ppg(self, stay_id: str) -> np.ndarray:
        """float32 ``[n_windows, 1250]`` (``n_windows`` may be 0)."""
        a, b = self.ppg_rows(stay_id)
        return np.asarray(self.ppg_array[a:b], dtype=np.float32)

    def pairs(self, stay_id: str) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``(ppg [n, 1250], ecg [n, 5000])`` for a pretraining stay."""
        a, b = self._pair_rows.get(str(stay_id), (0, 0))
        return (np.asarray(self.pairs_ppg_array[a:b], dtype=np.float32),
                np.asarray(self.pairs_ecg_array[a:b], dtype=np.float32))


def _row_ranges(index: pl.DataFrame) -> dict:
    if index.height == 0:
        return {}
    g = index.group_by("stay_id", maintain_order=True).agg(pl.col("row").min().alias("a"),
                                                           pl.col("row").max().alias("b"))
    return {s: (int(a), int(b) + 1) for s, a, b in g.iter_rows()}


def open_segments(cohort_dir) -> SegmentStore:
    """Open ``COHORT/segments``."""
    return SegmentStore(Path(cohort_dir) / STORE)


def check_profiles(stores: dict[str, str]) -> str:
    """The one preprocessing profile of ``stores`` (where -> profile: a segment store, a pair
    store, the run a model was trained in); a :class:`PhewasError` naming two that differ."""
    (first_where, first), *rest = stores.items()
    for where, profile in rest:
        if profile != first:
            raise PhewasError(f"{where}: windows made with --preprocess {profile}, but {first_where} with "
                              f"--preprocess {first}; a model sees one profile (rebuild one with the other's)")
    return first
