"""Readers for MC-MED's ``visits.csv`` and ``pmh.csv`` that validate at the boundary.

Every value is read as text and converted here, so that a bad cell ends in an
:class:`~phewas.base.errors.InputError` naming the file, the row (the line number, header = 1) and the
column. Dates are parsed by polars into microsecond datetimes: MC-MED's shifted dates (years
2100-2300) lie beyond pandas' nanosecond range.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from phewas.base.errors import InputError

ROW = "__row"  # line number in the CSV, header = 1


def parse_time(expr: pl.Expr) -> pl.Expr:
    """ISO-8601 with or without ``T``, fraction and trailing ``Z``, or a bare date, to datetime[us]."""
    e = expr.str.strip_chars().str.strip_suffix("Z").str.replace("T", " ")
    return pl.coalesce(
        e.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
        e.str.to_datetime("%Y-%m-%d %H:%M", strict=False, time_unit="us"),
        e.str.to_datetime("%Y-%m-%d", strict=False, time_unit="us"),
    )


def read_csv_text(path, wanted: dict | None = None, section: str = "") -> pl.DataFrame:
    """Columns as text, with a ``__row`` column holding the line number.

    With ``wanted`` (column-map key -> column name) only those columns are read, after checking
    the header for them (:func:`require_columns`): MC-MED's tables carry many columns the
    toolkit never reads, and reading them all as text costs memory at full scale.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        if wanted is not None:
            header = pl.read_csv(path, n_rows=0, infer_schema_length=0, encoding="utf8-lossy")
            _check_delimiter(header, path)
            require_columns(header, path, wanted, section)
            # reading some columns skips polars' field-count check: run it over every column,
            # streaming and keeping no row (a quarter of a second for 2 million rows)
            pl.scan_csv(path, infer_schema_length=0, encoding="utf8-lossy").filter(pl.lit(False)).collect(
                engine="streaming")
        # utf8-lossy: stray bytes in free-text columns the toolkit never reads (descriptions)
        # must not reject the file; in an identifier or code they fail its own check.
        df = pl.read_csv(path, infer_schema_length=0, null_values=[""], encoding="utf8-lossy",
                         columns=None if wanted is None else list(dict.fromkeys(wanted.values())))
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as err:
        row, why = _find_structure_error(path)
        raise InputError(path, f"cannot be read as CSV: {why or str(err).splitlines()[0]}", row=row) from None
    return df.with_row_index(ROW, offset=2)


def _find_structure_error(path: Path):
    """The first line whose field count differs from the header's, read with the csv module
    (polars' message names no line). Returns ``(row, reason)`` or ``(None, None)``."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, strict=True)
            header = next(reader, None)
            if header is None:
                return None, "the file is empty"
            for row in reader:
                if row and len(row) != len(header):
                    return reader.line_num, f"{len(row)} fields, the header has {len(header)}"
    except csv.Error as err:
        return reader.line_num, str(err)
    return None, None


def _check_delimiter(df: pl.DataFrame, path: Path) -> None:
    """One column named like ``MRN;CSN;...``: the file is separated by something else."""
    if len(df.columns) == 1:
        for sep in (";", "\t", "|"):
            if sep in df.columns[0]:
                raise InputError(path, f"the header has one column holding {sep!r}: the file is "
                                 f"separated by {sep!r}, expected commas", row=1)


def require_columns(df: pl.DataFrame, path, wanted: dict, section: str) -> None:
    """Raise naming the first missing column, its column-map key and the columns found."""
    found = [c for c in df.columns if c != ROW]
    for key, name in wanted.items():
        if name not in df.columns:
            raise InputError(path, f"missing column {name!r} (column map key {section}.{key}); "
                             f"columns found: {', '.join(found)}")


def first_bad(df: pl.DataFrame, bad: pl.Expr, path, column: str, message: str) -> None:
    """Raise for the first row where ``bad`` holds, quoting the cell."""
    hit = df.filter(bad).head(1)
    if hit.height:
        value = hit[column][0]
        raise InputError(path, f"{message}, found {value!r}", row=hit[ROW][0], column=column)


STAY_COLUMNS = ("stay_id", "patient_id", "age", "sex", "has_ppg", "has_sync_ecg", "split", "arrival")


def kept_name(column: str) -> str:
    """The name a kept ``visits.csv`` column takes in ``stays.parquet``: snake case
    (``Triage_acuity`` -> ``triage_acuity``, ``Means of arrival`` -> ``means_of_arrival``)."""
    return re.sub(r"[^0-9a-z]+", "_", column.lower()).strip("_")


def kept_columns(path, header: list[str], keep) -> dict[str, str]:
    """``stays.parquet`` name -> ``visits.csv`` column for each name in ``keep`` (matched exactly, else
    case-insensitively). Raises naming the columns found for a column that is not there, and for
    two columns, or a column and one of the cohort's own, that would share a name."""
    found = [c for c in header if c != ROW]
    out: dict[str, str] = {}
    for name in keep:
        column = name if name in found else next((c for c in found if c.lower() == name.lower()), None)
        if column is None:
            raise InputError(path, f"no column {name!r} to keep (--keep-columns); columns found: {', '.join(found)}")
        target = kept_name(column)
        if target in STAY_COLUMNS:
            raise InputError(path, f"column {column!r} cannot be kept: its name in stays.parquet, {target!r}, "
                             "is one of the cohort's own columns")
        if target in out and out[target] != column:
            raise InputError(path, f"columns {out[target]!r} and {column!r} would both be {target!r} in stays.parquet")
        out[target] = column
    return out


def read_visits(path, columns: dict, keep=()) -> pl.DataFrame:
    """Read ``visits.csv``.

    ``keep``: further columns to carry along as text (:func:`kept_columns`), under their
    :func:`kept_name`.

    Returns
    -------
    DataFrame with ``stay_id``, ``patient_id`` (text), ``age`` (Int16), ``sex`` (F/M/U),
    ``arrival`` (datetime[us]), ``dx_icd9``, ``dx_icd10`` (raw text cells), the kept columns
    and ``__row``.
    """
    cols = columns["visits"]
    extra = {}
    if keep:
        if not Path(path).is_file():
            raise InputError(path, "file not found")
        header = pl.read_csv(path, n_rows=0, infer_schema_length=0, encoding="utf8-lossy").columns
        extra = kept_columns(path, header, keep)
    df = read_csv_text(path, {**cols, **{f"keep.{k}": v for k, v in extra.items()}}, "visits")
    c = {k: pl.col(v) for k, v in cols.items()}
    for key in ("stay_id", "patient_id"):
        first_bad(df, c[key].is_null() | (c[key].str.strip_chars() == ""), path, cols[key],
                  "empty identifier")
    age = c["age"].str.strip_chars().cast(pl.Float64, strict=False)
    first_bad(df, c["age"].is_null() | age.is_null() | (age < 0) | (age > 130) | (age != age.round()),
              path, cols["age"], "expected an age in whole years")
    sex_lookup = {v.upper(): k for k, vals in columns["sex_values"].items() for v in vals}
    sex = c["sex"].fill_null("").str.strip_chars().str.to_uppercase()
    known = sex.is_in(list(sex_lookup)) | (sex == "")
    first_bad(df, ~known, path, cols["sex"],
              f"expected one of {sorted(v for vals in columns['sex_values'].values() for v in vals)}")
    arrival = parse_time(c["arrival_time"])
    first_bad(df, arrival.is_null(), path, cols["arrival_time"], "expected an ISO-8601 time")
    out = df.select(
        c["stay_id"].str.strip_chars().alias("stay_id"),
        c["patient_id"].str.strip_chars().alias("patient_id"),
        age.cast(pl.Int16).alias("age"),
        sex.replace_strict(sex_lookup, default="U").alias("sex"),
        arrival.alias("arrival"),
        c["dx_icd9"].alias("dx_icd9"),
        c["dx_icd10"].alias("dx_icd10"),
        *[pl.col(column).alias(name) for name, column in extra.items()],
        pl.col(ROW),
    )
    dup = out.filter(pl.col("stay_id").is_duplicated()).head(2)
    if dup.height:
        raise InputError(path, f"visit identifier repeated (also on row {dup[ROW][0]})",
                         row=dup[ROW][1], column=cols["stay_id"])
    return out


MAX_UNKNOWN_CODE_TYPE = 0.05  # above this share of history rows, an unknown CodeType is an error


def code_type_lookup(code_types: dict, source) -> dict:
    """Upper-cased ``CodeType`` value -> system ("9"/"10"); a value under both is an error."""
    lookup: dict = {}
    for key, system in (("icd9", "9"), ("icd10", "10")):
        for value in code_types[key]:
            v = value.strip().upper()
            if lookup.get(v, system) != system:
                raise InputError(source, f"column map lists code type {value!r} under both "
                                 "pmh.code_types.icd9 and pmh.code_types.icd10")
            lookup[v] = system
    return lookup


def read_pmh(path, columns: dict) -> tuple[pl.DataFrame, dict]:
    """Read ``pmh.csv``.

    ``CodeType`` values are matched case-insensitively against the column map's
    ``pmh.code_types`` lists. Rows of another value are dropped and counted; when they are more
    than 5% of the rows the file is rejected, naming the values, since a whole history silently
    lost changes every label.

    Returns
    -------
    codes : DataFrame with ``patient_id``, ``system`` ("9"/"10"), ``code`` (raw), ``noted``
        (datetime[us], null where the row has no date).
    dropped : dict
        Counts of rows left out, by reason (unknown code type, empty code), and of undated rows.
    """
    cols = {k: v for k, v in columns["pmh"].items() if k != "code_types"}
    lookup = code_type_lookup(columns["pmh"]["code_types"], "column map")
    df = read_csv_text(path, cols, "pmh")
    c = {k: pl.col(v) for k, v in cols.items()}
    first_bad(df, c["patient_id"].is_null(), path, cols["patient_id"], "empty identifier")
    df = df.with_columns(parse_time(c["noted_date"]).alias("__noted"))
    first_bad(df, c["noted_date"].is_not_null() & pl.col("__noted").is_null(), path,
              cols["noted_date"], "expected an ISO-8601 date")
    system = c["code_type"].fill_null("").str.strip_chars().str.to_uppercase().replace_strict(
        lookup, default=None)
    df = df.with_columns(system.alias("__system"))
    unknown = (df.filter(pl.col("__system").is_null()).group_by(c["code_type"].alias("value")).len()
               .sort("len", "value", descending=[True, False], nulls_last=True))
    n_unknown = int(unknown["len"].sum())
    if df.height and n_unknown > MAX_UNKNOWN_CODE_TYPE * df.height:
        shown = ", ".join(f"{v!r} ({n})" for v, n in unknown.head(5).iter_rows())
        more = f" and {unknown.height - 5} more" if unknown.height > 5 else ""
        raise InputError(path, f"{n_unknown} of {df.height} rows "
                         f"({100 * n_unknown / df.height:.1f}%) have a code type that is "
                         f"neither ICD-9 nor ICD-10: {shown}{more}; list them under "
                         "pmh.code_types.icd9 or pmh.code_types.icd10 in the column map (--columns)",
                         column=cols["code_type"])
    known = pl.col("__system").is_not_null()
    dropped = {
        "unknown_code_type": {str(k): int(v) for k, v in unknown.iter_rows()},
        "empty_code": int(df.select((known & c["code"].is_null()).sum()).item()),
        "undated": int(df["__noted"].null_count()),
    }
    out = df.lazy().filter(known & c["code"].is_not_null()).select(
        c["patient_id"].str.strip_chars().alias("patient_id"),
        pl.col("__system").alias("system"),
        c["code"].alias("code"),
        pl.col("__noted").alias("noted"),
    ).collect()
    return out, dropped
