"""``build-cohort``: MC-MED tables and WFDB headers to stays, phecode labels and splits."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from phewas.errors import InputError
from phewas.io import atomic_dir, file_sha256, write_manifest
from phewas.progress import progress

from .columns import load_columns
from .labels import CODE_SOURCES, label_matrix, map_codes, phecode_counts, visit_codes
from .phecodes import load_phecode_map, map_path
from .splits import SPLITS, assign_splits, shared_patients
from .tables import read_pmh, read_visits
from .wfdb_headers import scan_headers

log = logging.getLogger(__name__)


@dataclass
class CohortConfig:
    """Parameters of ``build-cohort`` (each is a command-line flag)."""

    seed: int = 0
    min_code_count: int = 1
    exclusions: bool = True
    codes: str = "visit"
    fractions: tuple = (0.8, 0.1, 0.1)
    min_ppg_s: float = 10.0
    min_overlap_s: float = 10.0
    workers: int | None = None

    def __post_init__(self):
        if self.codes not in CODE_SOURCES:
            raise ValueError(f"codes must be one of {CODE_SOURCES}, got {self.codes!r}")
        if self.min_code_count < 1:
            raise ValueError("min_code_count must be at least 1")
        self.fractions = tuple(float(f) for f in self.fractions)


def waveform_flags(visits: pl.DataFrame, records: pl.DataFrame, min_ppg_s: float,
                   min_overlap_s: float) -> pl.DataFrame:
    """``has_ppg``: a Pleth record of at least ``min_ppg_s``; ``has_sync_ecg``: a Pleth and an
    II record whose times overlap by at least ``min_overlap_s``."""
    ppg = records.filter((pl.col("channel") == "ppg") & (pl.col("duration_s") >= min_ppg_s))
    ecg = records.filter(pl.col("channel") == "ecg")
    pairs = ppg.join(ecg, on="stay_id", suffix="_ecg").filter(
        pl.col("start").is_not_null() & pl.col("start_ecg").is_not_null())
    overlap = (pl.min_horizontal("end", "end_ecg") - pl.max_horizontal("start", "start_ecg")
               ).dt.total_microseconds() / 1e6
    sync = pairs.filter(overlap >= min_overlap_s).select("stay_id").unique()
    return visits.with_columns(
        pl.col("stay_id").is_in(ppg["stay_id"].unique().implode()).alias("has_ppg"),
        pl.col("stay_id").is_in(sync["stay_id"].implode()).alias("has_sync_ecg"),
    )


def _labels_table(stay_ids, labels: np.ndarray, codes) -> pa.Table:
    labels = np.asfortranarray(labels)
    arrays = [pa.array(stay_ids, pa.string())]
    for j in progress(range(len(codes)), desc="label columns", unit="phecode"):
        col = labels[:, j]
        arrays.append(pa.array(col, type=pa.int8(), mask=col < 0))
    return pa.Table.from_arrays(arrays, names=["stay_id", *codes])


def _phecode_table(pmap, labels: np.ndarray, splits: np.ndarray) -> pl.DataFrame:
    out = pmap.phecodes.select("phecode", "description", "chapter", "sex")
    extra = {}
    for s in SPLITS:
        sub = labels[splits == s]
        extra[f"n_cases_{s}"] = (sub == 1).sum(axis=0).astype(np.int64)
        extra[f"n_controls_{s}"] = (sub == 0).sum(axis=0).astype(np.int64)
    return out.with_columns(**{k: pl.Series(v) for k, v in extra.items()})


def build_cohort(data_dir, out_dir, config: CohortConfig | None = None, columns_file=None,
                 overwrite: bool = False) -> dict:
    """Build a cohort folder from an MC-MED-layout data folder. Returns the manifest.

    Writes ``stays.parquet``, ``labels.parquet``, ``phecodes.parquet``, ``records.parquet`` (the
    waveform header index that ``extract-segments`` reads) and ``manifest.json``, atomically.
    """
    config = config or CohortConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    columns = load_columns(columns_file)
    files = {k: data_dir / v for k, v in columns["files"].items()}
    steps = progress(total=6, desc="build-cohort", unit="step")

    visits = read_visits(files["visits"], columns)
    if visits.height == 0:
        raise InputError(files["visits"], "no visits")
    history_raw, pmh_dropped = read_pmh(files["pmh"], columns)
    steps.update()

    records, bad_headers = scan_headers(files["waveforms"], columns["waveforms"], config.workers)
    if bad_headers:  # record names carry visit ids: logs get the count, the manifest the names
        log.warning("%d unreadable WFDB headers skipped; listed under bad_headers in %s/manifest.json",
                    len(bad_headers), out_dir)
    stays = waveform_flags(visits, records, config.min_ppg_s, config.min_overlap_s)
    stays = assign_splits(stays, config.seed, config.fractions).sort("stay_id")
    steps.update()

    pmap = load_phecode_map()
    vdx, vdx_unmapped = map_codes(visit_codes(stays), pmap)
    history = history_raw.filter(pl.col("patient_id").is_in(stays["patient_id"].implode()))
    if config.codes == "visit":
        history = history.filter(pl.col("noted").is_not_null())
    hist, hist_unmapped = map_codes(history, pmap)
    counts = phecode_counts(stays, vdx, hist, config.codes)
    steps.update()

    labels = label_matrix(stays["stay_id"].to_list(), stays["sex"].to_numpy(), counts, pmap,
                          min_code_count=config.min_code_count, exclusions=config.exclusions)
    steps.update()
    unmapped = (pl.concat([vdx_unmapped, hist_unmapped]).group_by("system", "code")
                .agg(pl.col("n").sum()).sort("n", "system", "code", descending=[True, False, False]))

    split_arr = stays["split"].to_numpy()
    phecodes = _phecode_table(pmap, labels, split_arr)
    n_shared = shared_patients(stays)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        stays.select("stay_id", "patient_id", "age", "sex", "has_ppg", "has_sync_ecg", "split",
                     "arrival").write_parquet(tmp / "stays.parquet")
        pq.write_table(_labels_table(stays["stay_id"].to_list(), labels, pmap.codes),
                       tmp / "labels.parquet")
        phecodes.write_parquet(tmp / "phecodes.parquet")
        records.write_parquet(tmp / "records.parquet")
        steps.update()
        inputs = {name: {"path": str(p.resolve()), "sha256": file_sha256(p)}
                  for name, p in files.items() if name != "waveforms"}
        inputs["waveforms"] = {"path": str(files["waveforms"].resolve()),
                               "headers": int(records.height + len(bad_headers))}
        inputs["phecode_map"] = {"path": str(map_path()), "sha256": file_sha256(map_path())}
        if columns_file:
            inputs["columns"] = {"path": str(Path(columns_file).resolve()),
                                 "sha256": file_sha256(columns_file)}
        manifest = write_manifest(
            tmp, command="build-cohort", inputs=inputs,
            parameters={**asdict(config), "columns": columns},
            counts={
                "visits": stays.height,
                "patients": int(stays["patient_id"].n_unique()),
                "stays_by_split": dict(stays.group_by("split").len().sort("split").iter_rows()),
                "patients_by_split": dict(stays.group_by("split").agg(pl.col("patient_id").n_unique())
                                          .sort("split").iter_rows()),
                "stays_with_ppg": int(stays["has_ppg"].sum()),
                "stays_with_sync_ecg": int(stays["has_sync_ecg"].sum()),
                "phecodes": len(pmap.codes),
                "history_rows_used": int(history.height),
                "label_cells": {"case": int((labels == 1).sum()), "control": int((labels == 0).sum()),
                                "excluded": int((labels == -1).sum())},
            },
            patients_shared_heldout_pretrain=n_shared,
            unmapped_codes={"total": int(unmapped["n"].sum()), "distinct": unmapped.height,
                            "by_code": {f"ICD{s}:{c}": int(n) for s, c, n in unmapped.iter_rows()}},
            dropped_history_rows=pmh_dropped,
            bad_headers={"count": len(bad_headers), "files": [f"{p}: {why}" for p, why in bad_headers]},
        )
        steps.update()
    steps.close()
    return manifest

