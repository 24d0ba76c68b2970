"""Per-visit phecode labels: case / control / excluded, as R PheWAS and PheTK define them."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import sparse

from .phecodes import PhecodeMap, normalise_code

CODE_SOURCES = ("visit", "all")


def visit_codes(visits: pl.DataFrame) -> pl.DataFrame:
    """Explode the visit diagnosis cells (``dx_icd9``, ``dx_icd10``) into one row per code.

    A cell may hold several comma-separated codes (``'789.01, 338.19'``). Returns
    ``patient_id``, ``stay_id``, ``system``, ``code``, ``date`` (the visit's arrival).
    """
    parts = []
    for col, system in (("dx_icd9", "9"), ("dx_icd10", "10")):
        parts.append(
            visits.select("patient_id", "stay_id", pl.col("arrival").alias("date"),
                          pl.col(col).str.split(",").alias("code"))
            .explode("code")
            .with_columns(pl.col("code").str.strip_chars(), pl.lit(system).alias("system"))
            .filter(pl.col("code").is_not_null() & (pl.col("code") != ""))
        )
    return pl.concat(parts).select("patient_id", "stay_id", "system", "code", "date")


def map_codes(codes: pl.DataFrame, pmap: PhecodeMap) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Join codes to phecodes (rolled up). Returns ``(mapped, unmapped_counts)``.

    ``mapped`` has one row per (input row, phecode); ``unmapped_counts`` has ``system``,
    ``code`` (normalised) and ``n`` for codes absent from the map.
    """
    codes = codes.with_columns(normalise_code(pl.col("code")).alias("code"))
    mapped = codes.join(pmap.icd, on=["system", "code"], how="inner")
    unmapped = (codes.join(pmap.icd.select("system", "code").unique(), on=["system", "code"],
                           how="anti")
                .group_by("system", "code").len("n").sort("n", "system", "code",
                                                         descending=[True, False, False]))
    return mapped, unmapped


def phecode_counts(stays: pl.DataFrame, visit_dx: pl.DataFrame, history: pl.DataFrame,
                   source: str = "visit") -> pl.DataFrame:
    """Distinct (code, date) count per (stay, phecode).

    Parameters
    ----------
    stays : DataFrame with ``stay_id``, ``patient_id``, ``arrival``.
    visit_dx : mapped visit diagnoses (``stay_id``, ``patient_id``, ``code``, ``date``, ``phecode``).
    history : mapped history (``patient_id``, ``code``, ``noted``, ``phecode``).
    source : "visit" counts the visit's own diagnoses and history noted on or before its
        arrival (undated history is left out); "all" counts every code of the patient.
    """
    if source not in CODE_SOURCES:
        raise ValueError(f"source must be one of {CODE_SOURCES}, got {source!r}")
    keep = ["stay_id", "phecode", "code", "date"]
    hist = history.rename({"noted": "date"}).join(
        stays.select("stay_id", "patient_id", "arrival"), on="patient_id", how="inner")
    if source == "visit":
        own = visit_dx.select(keep)
        hist = hist.filter(pl.col("date") <= pl.col("arrival"))
    else:
        own = visit_dx.select("patient_id", "phecode", "code", "date").join(
            stays.select("stay_id", "patient_id"), on="patient_id", how="inner").select(keep)
    return (pl.concat([own, hist.select(keep)]).unique()
            .group_by("stay_id", "phecode").len("n"))


def label_matrix(stay_ids, sexes, counts: pl.DataFrame, pmap: PhecodeMap, *,
                 min_code_count: int = 1, exclusions: bool = True):
    """Dense labels: 1 case, 0 control, -1 excluded (null on disk).

    Parameters
    ----------
    stay_ids : sequence of str, the row order.
    sexes : sequence of "F"/"M"/"U", aligned with ``stay_ids``.
    counts : output of :func:`phecode_counts`.
    min_code_count : a case needs at least this many distinct codes/dates; a stay with fewer
        but more than zero is excluded (R PheWAS).
    exclusions : a would-be control with any phecode of the ``exclude_range`` is excluded.

    Returns
    -------
    labels : int8 array ``[n_stays, n_phecodes]`` in ``pmap.codes`` order.
    """
    if min_code_count < 1:
        raise ValueError("min_code_count must be at least 1")
    codes = pmap.codes
    row_of = pl.DataFrame({"stay_id": list(stay_ids), "row": np.arange(len(stay_ids))})
    col_of = pl.DataFrame({"phecode": codes, "col": np.arange(len(codes))})
    idx = counts.join(row_of, on="stay_id").join(col_of, on="phecode")
    rows, cols = idx["row"].to_numpy(), idx["col"].to_numpy()
    n = np.minimum(idx["n"].to_numpy(), 127).astype(np.int8)
    count = np.zeros((len(stay_ids), len(codes)), dtype=np.int8)
    count[rows, cols] = n
    # int8 throughout: at MC-MED scale the matrix is 118k x 1,817 cells.
    labels = np.zeros_like(count)
    labels[count >= min_code_count] = 1
    labels[(count > 0) & (count < min_code_count)] = -1
    if exclusions:
        present = sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=count.shape)
        hit = (present @ pmap.exclusion_matrix()).tocoo()
        control = labels[hit.row, hit.col] == 0
        labels[hit.row[control], hit.col[control]] = -1
    sexes = np.asarray(sexes)
    rule = pmap.phecodes["sex"].to_numpy()
    for s in ("F", "M"):
        labels[np.ix_(sexes != s, rule == s)] = -1
    return labels
