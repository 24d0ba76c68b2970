"""The adjustment that the association test shares across phenotypes: age as a restricted cubic
spline (Harrell; knots at quantiles of the ages analysed), sex indicators, an optional age x sex
interaction, and the covariates a user names (text dummy-coded, numbers linear or splined).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def rcs_basis(x: np.ndarray, df: int = 5) -> np.ndarray:
    """Restricted (natural) cubic spline basis, Harrell's parametrisation: ``x`` and ``df - 1``
    cubic terms, with ``df + 1`` knots at evenly spaced quantiles from the 5th to the 95th
    percentile (``df + 1 = 3``: the 10th, 50th, 90th); linear beyond the outer knots. Knots that
    coincide (few distinct ages) are merged, lowering the degrees of freedom. Columns are
    standardised."""
    x = np.asarray(x, dtype=np.float64)
    k = df + 1
    t = np.unique(np.quantile(x, [0.1, 0.5, 0.9] if k == 3 else np.linspace(0.05, 0.95, k))) if df >= 2 else []
    cols = [x]
    if len(t) >= 3:
        scale = (t[-1] - t[0]) ** 2
        cube = lambda u: np.clip(u, 0, None) ** 3  # noqa: E731
        for j in range(len(t) - 2):
            cols.append((cube(x - t[j]) - cube(x - t[-2]) * (t[-1] - t[j]) / (t[-1] - t[-2])
                         + cube(x - t[-1]) * (t[-2] - t[j]) / (t[-1] - t[-2])) / scale)
    B = np.column_stack(cols)
    sd = B.std(axis=0)
    return (B - B.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def model_description(age_df: int, interaction: bool, covariates=(), splined=()) -> str:
    """The adjustment model, as recorded in ``summary.json``."""
    extra = "".join(f" + rcs({c})" if c in splined else f" + {c}" for c in covariates)
    return (f"logit P(phenotype) ~ rcs(age, {age_df} df, knots at quantiles) + sex"
            + (" + rcs(age) x female" if interaction else "") + extra
            + " [+ standardised logit of the PPG score]")


def adjustment_label(covariates=()) -> str:
    """What the association adjusts for, in words: "age and sex", or "age, sex, race, ..."."""
    return "age, sex, " + ", ".join(covariates) if covariates else "age and sex"


def _informative(C: np.ndarray) -> np.ndarray:
    """The columns of ``C`` that vary over its rows (statsmodels cannot fit a constant one)."""
    return C[:, np.ptp(C, axis=0) > 0] if C.size else C


@dataclass
class Design:
    """The adjustment shared by every phenotype: ``matrix`` ``[n, p]`` (an intercept first, then the
    age spline, sex, their interaction if asked, and the user's covariates), the columns'
    ``names``, each covariate's ``coding`` (kind, reference level, levels kept and pooled, rows
    missing), the rows every numeric covariate is known for (``usable``), and notes."""

    matrix: np.ndarray
    names: list[str]
    coding: dict = field(default_factory=dict)
    usable: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def adjustment_design(age: np.ndarray, sex: np.ndarray, columns: dict | None = None, *, age_df: int = 5,
           interaction: bool = False, splined=(), min_share: float = 0.01) -> Design:
    """Build the adjustment (see :class:`Design`) over the given stays.

    ``columns`` maps a covariate's name to its values per stay. A text column is dummy-coded with
    its most frequent level as the reference; levels rarer than ``min_share`` of the stays are
    pooled into ``other``, and missing values are a level of their own, ``missing``. A numeric
    column enters linearly (standardised) or, when named in ``splined``, as a restricted cubic
    spline like age; stays where it is missing are not usable (``usable``). A column constant over
    the stays enters nothing, with a note.
    """
    age = np.asarray(age, dtype=np.float64)
    sex = np.asarray(sex)
    n = len(age)
    usable = np.ones(n, dtype=bool)
    coding, notes, blocks = {}, [], []
    for name, values in (columns or {}).items():
        values = np.asarray(values, dtype=object)
        numeric = _as_numeric(values)
        if numeric is not None:
            missing = ~np.isfinite(numeric)
            usable &= ~missing
            coding[name] = {"kind": "numeric", "entered": "spline" if name in splined else "linear",
                            "rows_missing": int(missing.sum())}
            blocks.append((name, numeric, "numeric"))
        else:
            text = np.array(["missing" if v is None or v == "" else str(v) for v in values], dtype=object)
            levels, counts = np.unique(text, return_counts=True)
            rare = [lv for lv, c in zip(levels, counts) if c < min_share * n and lv != "missing"]
            if len(rare) > 1:
                text = np.where(np.isin(text, rare), "other", text)
            levels, counts = np.unique(text, return_counts=True)
            reference = str(levels[np.argmax(counts)])
            coding[name] = {"kind": "text", "reference": reference,
                            "levels": [str(lv) for lv in levels if lv != reference],
                            "pooled_into_other": [str(r) for r in rare] if len(rare) > 1 else [],
                            "rows_missing": int((text == "missing").sum())}
            blocks.append((name, text, "text"))
    cols, names = [np.ones(n)], ["intercept"]
    A = rcs_basis(age[usable], age_df)
    full_age = np.zeros((n, A.shape[1]))
    full_age[usable] = A
    cols += list(full_age.T)
    names += [f"age_{j}" for j in range(A.shape[1])]
    female = (sex == "F").astype(float)
    cols += [female, (sex == "U").astype(float)]
    names += ["sex_F", "sex_U"]
    if interaction:
        cols += [a * female for a in full_age.T]
        names += [f"age_{j}_x_F" for j in range(A.shape[1])]
    for name, values, kind in blocks:
        if kind == "text":
            for level in coding[name]["levels"]:
                cols.append((values == level).astype(float))
                names.append(f"{name}={level}")
        elif name in splined:
            B = np.zeros((n, 0))
            if usable.any():
                part = rcs_basis(values[usable], age_df)
                B = np.zeros((n, part.shape[1]))
                B[usable] = part
            cols += list(B.T)
            names += [f"{name}_{j}" for j in range(B.shape[1])]
        else:
            v = np.where(usable, values, 0.0)
            sd = v[usable].std() if usable.any() else 0.0
            cols.append((v - v[usable].mean()) / sd if sd > 0 else np.zeros(n))
            names.append(name)
    M = np.column_stack(cols)
    keep = np.r_[True, np.ptp(M[usable][:, 1:], axis=0) > 0] if usable.any() else np.ones(M.shape[1], bool)
    for j in np.flatnonzero(~keep):
        if not names[j].startswith(("sex_", "age_")):
            notes.append(f"{names[j]} is constant over the stays: it adjusts for nothing")
    return Design(M[:, keep], [nm for nm, k in zip(names, keep) if k], coding, usable, notes)


def _as_numeric(values: np.ndarray) -> np.ndarray | None:
    """``values`` as numbers (missing ones NaN), or None if some present value is not a number."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            return None
    return out
