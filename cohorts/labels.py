"""Per-stay phecode labels: case / control / excluded, with R PheWAS' rules.

The rules (R PheWAS ``createPhenotypes``; PheTK where R is silent):

* A code counts on its calendar *day*: a phecode's count is the number of distinct days on which
  the patient had any code mapping to it (R PheWAS counts distinct dates, ``length(unique(
  index))``). A visit coded in both ICD-9 and ICD-10, or several visits on one day, is one day.
* A stay's codes are every code of the patient up to the stay (``source="visit"``, the default):
  the visit's own diagnoses, those of the patient's earlier visits (arrival at or before this
  one's) and history rows noted on or before the stay's day. "Has ever had, up to this stay."
  ``source="all"`` uses every code of the patient, whenever dated.
* A case needs at least ``min_code_count`` days; a patient with fewer, but some, is excluded.
  A would-be control with any phecode of the exclusion range is excluded. Sex-specific phecodes
  are null for the other sex and for unknown sex.
* Undated history rows: the patient has the code at an unknown time. With ``source="visit"``
  their phecodes (and the phecodes whose exclusion range they fall in) are null instead of
  control for every stay, and never make a case; the cells so nulled are counted. With
  ``source="all"`` an undated row counts as one more (unknown) date, as R's ``unique`` counts NA.

Work is on integer patient and phecode indices and per-patient summaries (first day, the day that
makes a case), copied to stays only at the end; the dense matrix is int8.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import sparse

from .phecodes import PhecodeMap, normalise_code, strip_code

CODE_SOURCES = ("visit", "all")
BLOCK_ROWS = 16384  # rows per block when the dense matrix is scanned (bounds temporary memory)
COUNT_RULE = ("distinct calendar days per phecode (R PheWAS num_distinct_dates); a stay sees the "
              "patient's codes up to its arrival (earlier visits included, history by day)")


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


def resolve_codes(codes: pl.DataFrame, pmap: PhecodeMap) -> pl.DataFrame:
    """Map distinct ``(system, code)`` pairs (raw spellings) to phecode columns.

    The exact spelling (dots and spaces removed, case kept) is matched first; a spelling that the
    map lacks is matched case-insensitively (:class:`~cohorts.phecodes.PhecodeMap.folded`).
    Returns ``system``, ``code`` (as given), ``col``; codes that map nowhere have no row.
    """
    uniq = codes.select("system", "code").unique().with_columns(
        strip_code(pl.col("code")).alias("_exact"), normalise_code(pl.col("code")).alias("_key"))
    exact = uniq.join(pmap.icd.select("system", pl.col("code").alias("_exact"), "col"),
                      on=["system", "_exact"], how="inner")
    rest = uniq.join(exact.select("system", "code").unique(), on=["system", "code"], how="anti")
    folded = rest.join(pmap.folded.rename({"key": "_key"}), on=["system", "_key"], how="inner")
    return pl.concat([exact.select("system", "code", "col"), folded.select("system", "code", "col")])


def unmapped_codes(codes: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """Occurrences of codes that map nowhere: ``system``, ``code`` (upper case, no dots), ``n``.

    ``table`` is :func:`resolve_codes`' answer for these codes.
    """
    return (codes.select("system", "code")
            .join(table.select("system", "code").unique(), on=["system", "code"], how="anti")
            .group_by("system", normalise_code(pl.col("code")).alias("code")).len("n")
            .sort("n", "system", "code", descending=[True, False, False]))


def _patient_summaries(stays, visit_dx, history, table, min_code_count):
    """Per (patient, phecode): distinct days, first time seen, the time its case day arrives.

    Visit codes are timed by their visit's arrival, history rows by the start of their day, so
    "on or before the stay" reads the history by calendar day and the visits by arrival. One
    lazy query from raw code rows to integer summaries: the rolled-up rows (three per code on
    average) are never held with their text columns.
    """
    patients = stays.select("patient_id").unique().with_row_index("pid")
    events = (pl.concat([
        visit_dx.lazy().select("patient_id", "system", "code", pl.col("date").alias("time")),
        history.lazy().select("patient_id", "system", "code",
                              pl.col("noted").dt.truncate("1d").alias("time")),
    ]).join(table.lazy(), on=["system", "code"], how="inner")
      .join(patients.lazy(), on="patient_id", how="inner")
      .select("pid", "col", "time")).collect(engine="streaming")
    dated = (events.lazy().filter(pl.col("time").is_not_null())
             .group_by("pid", "col", pl.col("time").dt.date().alias("day"))
             .agg(pl.col("time").min())
             .group_by("pid", "col").agg(
                 pl.len().alias("days"),
                 pl.col("time").min().alias("t_first"),
                 pl.col("time").sort().slice(min_code_count - 1, 1).first().alias("t_case")))
    undated = events.lazy().filter(pl.col("time").is_null()).select("pid", "col").unique()
    summary, undated = pl.collect_all([dated, undated], engine="streaming")
    return patients, summary, undated


def _stay_frame(stays, patients):
    return (stays.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), "patient_id", "arrival")
            .join(patients, on="patient_id", how="inner", maintain_order="left"))


def _block_pairs(rows, cols, values=None):
    """Split COO pairs sorted by row into ``{block: (rows - start, cols[, values])}``."""
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    values = None if values is None else values[order]
    bounds = np.searchsorted(rows, np.arange(0, rows.max() + BLOCK_ROWS + 1 if len(rows) else 1,
                                             BLOCK_ROWS))
    out = {}
    for b in range(len(bounds) - 1):
        lo, hi = bounds[b], bounds[b + 1]
        if hi > lo:
            out[b] = (rows[lo:hi] - b * BLOCK_ROWS, cols[lo:hi],
                      None if values is None else values[lo:hi])
    return out


def _exclude_controls(block, rows, cols, excl, m) -> int:
    """Set would-be controls to -1 at ``(rows, cols)`` and wherever those phecodes exclude."""
    targets = [(rows, cols)]
    if excl is not None and len(rows):
        hit = (sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)),
                                 shape=(block.shape[0], m)) @ excl).tocoo()
        targets.append((hit.row, hit.col))
    n = 0
    for r, c in targets:
        control = block[r, c] == 0
        n += int(control.sum())
        block[r[control], c[control]] = -1
    return n


def iter_label_blocks(stays: pl.DataFrame, visit_dx: pl.DataFrame, history: pl.DataFrame,
                      pmap: PhecodeMap, *, source: str = "visit", min_code_count: int = 1,
                      exclusions: bool = True, info: dict | None = None,
                      table: pl.DataFrame | None = None):
    """Yield ``(first_row, block)``: int8 labels (1 case, 0 control, -1 excluded; null on disk)
    for ``BLOCK_ROWS`` stays at a time, columns in ``pmap.codes`` order.

    Parameters
    ----------
    stays : DataFrame with ``stay_id``, ``patient_id``, ``sex`` ("F"/"M"/"U"), ``arrival``; the
        row order of the labels.
    visit_dx : visit diagnoses (:func:`visit_codes`): ``patient_id``, ``system``, ``code`` (as
        written), ``date``.
    history : history rows: ``patient_id``, ``system``, ``code``, ``noted`` (null when undated).
    source : "visit" (codes up to the stay) or "all" (every code of the patient).
    min_code_count : distinct days a case needs; fewer but some is excluded.
    exclusions : apply the exclusion ranges to would-be controls.
    info : dict, optional
        Receives the counts once the last block is out: ``undated_cells_nulled`` (visit mode:
        cells that would have been controls), ``patient_phecode_pairs``.
    table : :func:`resolve_codes`' answer for these codes, if computed already.

    The whole matrix is never held: at MC-MED scale it is 118,000 x 1,817 cells.
    """
    if source not in CODE_SOURCES:
        raise ValueError(f"source must be one of {CODE_SOURCES}, got {source!r}")
    if min_code_count < 1:
        raise ValueError("min_code_count must be at least 1")
    n, m = stays.height, len(pmap.codes)
    if table is None:
        table = resolve_codes(pl.concat([visit_dx.select("system", "code"),
                                         history.select("system", "code")]), pmap)
    patients, summary, undated = _patient_summaries(stays, visit_dx, history, table, min_code_count)
    frame = _stay_frame(stays, patients)
    if source == "visit":
        hits = (frame.join(summary, on="pid", how="inner")
                .filter(pl.col("t_first") <= pl.col("arrival"))
                .select("row", "col", (pl.col("t_case") <= pl.col("arrival")).fill_null(False).alias("case")))
    else:
        days = (summary.select("pid", "col", "days")
                .join(undated.with_columns(pl.lit(1, pl.UInt32).alias("unknown")), on=["pid", "col"],
                      how="full", coalesce=True)
                .select("pid", "col", (pl.col("days").fill_null(0) + pl.col("unknown").fill_null(0))
                        .alias("n")))
        hits = (frame.join(days, on="pid", how="inner")
                .select("row", "col", (pl.col("n") >= min_code_count).alias("case")))
    pairs = _block_pairs(hits["row"].to_numpy(), hits["col"].to_numpy().astype(np.int64),
                         np.where(hits["case"].to_numpy(), 1, -1).astype(np.int8))
    maybe = {}
    if source == "visit" and undated.height:
        u = frame.join(undated, on="pid", how="inner")
        maybe = _block_pairs(u["row"].to_numpy(), u["col"].to_numpy().astype(np.int64))
    counts = {"undated_cells_nulled": 0, "patient_phecode_pairs": int(summary.height)}
    del hits, summary, undated, frame
    visit_dx = history = None  # noqa: F841 (a generator keeps its arguments alive otherwise)
    excl = pmap.exclusion_matrix() if exclusions else None
    sexes = stays["sex"].to_numpy()
    other_sex = [(s, pmap.phecodes["sex"].to_numpy() == s) for s in ("F", "M")]
    for b, a in enumerate(range(0, n, BLOCK_ROWS)):
        block = np.zeros((min(BLOCK_ROWS, n - a), m), dtype=np.int8, order="F")
        if b in pairs:
            r, c, v = pairs.pop(b)
            block[r, c] = v
            _exclude_controls(block, r, c, excl, m)  # present cells are 1/-1 already: untouched
        sx = sexes[a:a + len(block)]
        for s, rule in other_sex:
            block[np.ix_(sx != s, rule)] = -1
        if b in maybe:
            r, c, _ = maybe.pop(b)
            counts["undated_cells_nulled"] += _exclude_controls(block, r, c, excl, m)
        yield a, block
    if info is not None:
        info.update(counts)


class LabelWriter:
    """Write ``labels.parquet`` block by block, counting cases and controls per split.

    ``labels.parquet`` holds ``stay_id`` and one Int8 column per phecode (1 case, 0 control,
    null excluded); each block is one Parquet row group, so only one block is ever held as Arrow
    arrays. Use as a context manager; :attr:`split_counts` holds ``n_cases_<split>`` and
    ``n_controls_<split>`` per phecode, :attr:`cells` the case/control/excluded totals.
    """

    def __init__(self, path, stay_ids, codes, splits, split_names):
        self.schema = pa.schema([("stay_id", pa.string())] + [(c, pa.int8()) for c in codes])
        self.stay_ids = np.asarray(stay_ids, dtype=object)
        self.splits, self.split_names = np.asarray(splits), tuple(split_names)
        self.split_counts = {f"n_{kind}_{s}": np.zeros(len(codes), np.int64)
                             for s in self.split_names for kind in ("cases", "controls")}
        self.cells = {"case": 0, "control": 0, "excluded": 0}
        self._writer = pq.ParquetWriter(path, self.schema)

    def write(self, first_row: int, block: np.ndarray) -> None:
        rows = slice(first_row, first_row + len(block))
        arrays = [pa.array(self.stay_ids[rows], pa.string())]
        for j in range(block.shape[1]):
            col = np.ascontiguousarray(block[:, j])
            arrays.append(pa.array(col, type=pa.int8(), mask=col < 0))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        part = self.splits[rows]
        for s in self.split_names:
            sub = block[part == s]
            if len(sub):
                self.split_counts[f"n_cases_{s}"] += (sub == 1).sum(axis=0)
                self.split_counts[f"n_controls_{s}"] += (sub == 0).sum(axis=0)
        for name, value in (("case", 1), ("control", 0), ("excluded", -1)):
            self.cells[name] += int(np.count_nonzero(block == value))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._writer.close()
