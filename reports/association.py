"""Confound-aware association: does the PPG score add anything beyond age, sex and the covariates
a user names?

For one phenotype: out-of-fold AUC of a logistic regression on the adjustment alone and on the
adjustment and the score, over the analysed stays; and the likelihood-ratio test of adding the
score to the adjustment, with the odds ratio per standard deviation of the score.
:func:`associate_all` does this for every phenotype at once on one shared design
(:mod:`reports.logistic`); :func:`associate` does it for one phenotype with statsmodels and
scikit-learn, the reference the batched version is tested against.

The test is run on persons, as PheWAS does: one stay per patient, the patient's latest analysed
stay (its label carries all earlier history). Stays of one patient are not independent (a
comorbidity of one frequent visitor repeats in every one of their stays), and a test over all
stays overstates the evidence (``docs/statistics.md`` has the measurements). ``p_value`` and
``lrt_p_value`` are the same number (both column names are kept); ``n_pos_patients`` and
``n_neg_patients`` are the persons tested. Age enters as a restricted cubic spline (Harrell;
default 5 degrees of freedom, knots at quantiles of the ages analysed), since disease risk follows
age non-linearly (a sigmoid rise, a mid-life hump) and the PPG score carries a saturating
"vascular age". Sex enters as indicators for F and U, dropped where constant (sex-specific
phenotypes); an age x sex interaction is optional. The score is the logit of the predicted
probability, standardised within the persons tested.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import statsmodels.api as sm
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from phewas.base.auc import auc

from .firth import firth_lrt
from .logistic import fit_many, predict_many

COLUMNS = ("auc_age_sex", "auc_age_sex_ppg", "lrt_chi2", "lrt_p_value", "or_per_sd", "or_ci_low", "or_ci_high",
           "p_value")
COUNT_COLUMNS = ("n_pos_patients", "n_neg_patients")
MAX_ABS_BETA = 15.0  # beyond this, the score's coefficient signals (quasi-)separation


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


def covariates(age: np.ndarray, sex: np.ndarray, age_df: int = 5, interaction: bool = False) -> np.ndarray:
    """Age (restricted cubic spline, ``age_df`` degrees of freedom) and sex indicators, and with
    ``interaction`` the products of the female indicator with the age terms; constant columns
    dropped."""
    if not len(age):
        return np.zeros((0, 0))
    A = rcs_basis(age, age_df)
    female = (sex == "F").astype(float)
    cols = [*A.T, female, (sex == "U").astype(float)]
    if interaction:
        cols += [a * female for a in A.T]
    return np.column_stack([c for c in cols if np.ptp(c) > 0])


def model_description(age_df: int, interaction: bool, covariates=(), splined=()) -> str:
    """The adjustment model, as recorded in ``summary.json``."""
    extra = "".join(f" + rcs({c})" if c in splined else f" + {c}" for c in covariates)
    return (f"logit P(phenotype) ~ rcs(age, {age_df} df, knots at quantiles) + sex"
            + (" + rcs(age) x female" if interaction else "") + extra
            + " [+ standardised logit of the PPG score]")


def adjustment_label(covariates=()) -> str:
    """What the association adjusts for, in words: "age and sex", or "age, sex, race, ..."."""
    return "age, sex, " + ", ".join(covariates) if covariates else "age and sex"


def score_z(prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob.astype(np.float64), 1e-7, 1 - 1e-7)
    x = np.log(p / (1 - p))
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x - x.mean()


def latest_per_patient(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Boolean mask of each patient's last row by ``order`` (ties: the later row)."""
    g = np.unique(np.asarray(groups), return_inverse=True)[1]
    idx = np.lexsort((np.arange(len(g)), np.asarray(order), g))
    last = np.r_[g[idx][1:] != g[idx][:-1], True]
    mask = np.zeros(len(g), dtype=bool)
    mask[idx[last]] = True
    return mask


def _oof_auc(X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> float:
    if X.shape[1] == 0:
        return 0.5
    oof = np.zeros(len(y))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in cv.split(X, y):
        model = LogisticRegression(max_iter=200).fit(X[train], y[train])
        oof[test] = model.decision_function(X[test])
    return auc(oof, y == 1)


def _ordinary_lrt(Cp, z, yp) -> dict | None:
    """statsmodels' likelihood-ratio test; None where a fit separates or does not converge."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reduced = sm.Logit(yp, Cp).fit(disp=0, maxiter=100)
            full = sm.Logit(yp, np.column_stack([Cp, z])).fit(disp=0, maxiter=100)
            fitted = full.predict()
    except (np.linalg.LinAlgError, ValueError):
        return None
    # separation shows as fitted probabilities of 0 or 1 and a diverging score coefficient (the
    # spline's own coefficients are large by collinearity, and say nothing)
    if (not (full.mle_retvals.get("converged") and reduced.mle_retvals.get("converged"))
            or abs(full.params[-1]) > MAX_ABS_BETA or not np.isfinite(full.bse).all()
            or ((fitted < 1e-8) | (fitted > 1 - 1e-8)).any()):
        return None
    lr = max(2.0 * (full.llf - reduced.llf), 0.0)
    return {"chi2": lr, "p": float(stats.chi2.sf(lr, 1)), "beta": float(full.params[-1]),
            "se": float(full.bse[-1]), "converged": True}


def associate(y: np.ndarray, prob: np.ndarray, age: np.ndarray, sex: np.ndarray, *, groups=None, order=None,
              folds: int = 5, seed: int = 0, age_df: int = 5, interaction: bool = False,
              min_persons: int = 1, design: np.ndarray | None = None) -> dict:
    """Association figures for one phenotype.

    Parameters
    ----------
    y, prob, age, sex : ndarray of shape (n,)
        Over the phenotype's analysed stays: 0/1 label, predicted probability, age, sex.
    groups : ndarray of shape (n,), optional
        The stays' patient ids; default: every stay its own patient.
    order : ndarray of shape (n,), optional
        Sortable stay times (arrival); the test keeps each patient's last stay by it. Default:
        the last row.
    folds, seed
        Cross-validation of the out-of-fold AUCs.
    age_df, interaction
        The age model (:func:`covariates`), for the out-of-fold AUCs and the test alike.
    min_persons : int
        Positive (and negative) persons the test needs; fewer: no test (``method`` "none").
        Persons of unknown sex (``U``) are not tested; the out-of-fold AUCs keep them.
    design : ndarray of shape (n, p), optional
        The adjustment's columns for these stays, built once for every phenotype
        (:func:`design`, without its intercept); default: age and sex, built on these stays
        (the out-of-fold models) and on the persons tested (the test).

    The ordinary fit is used where it converges without separation; otherwise Firth's penalised
    regression (:mod:`reports.firth`) and its penalised likelihood-ratio test (``method``
    "firth"); a fit that still fails gets ``p_value`` 1 and ``converged`` False, and stays in the
    multiple-testing family.
    """
    y = np.asarray(y, dtype=np.int64)
    age, sex, prob = np.asarray(age, dtype=np.float64), np.asarray(sex), np.asarray(prob)
    C = covariates(age, sex, age_df, interaction) if design is None else np.asarray(design, np.float64)
    folds = int(min(folds, y.sum(), len(y) - y.sum()))
    out = dict.fromkeys(COLUMNS, np.nan)
    if folds >= 2:
        out["auc_age_sex"] = _oof_auc(C, y, folds, seed)
        out["auc_age_sex_ppg"] = _oof_auc(np.column_stack([C, score_z(prob)]), y, folds, seed)
    keep = np.ones(len(y), dtype=bool) if groups is None else \
        latest_per_patient(groups, np.arange(len(y)) if order is None else order)
    # persons of unknown sex (MC-MED's `U`, about 0.5%) are left out of the test, as PheWAS tools
    # do: as an indicator they separate almost every phenotype (no case among a handful)
    keep &= sex != "U"
    yp = y[keep]
    n_pos, n_neg = int(yp.sum()), int(len(yp) - yp.sum())
    out.update(n_pos_patients=n_pos, n_neg_patients=n_neg, method="none", converged=False, note="")
    if min(n_pos, n_neg) < max(min_persons, 1):
        out["note"] = f"not tested: {n_pos} positive and {n_neg} negative persons (fewer than {min_persons})"
        return out
    C_persons = covariates(age[keep], sex[keep], age_df, interaction) if design is None else \
        _informative(C[keep])
    Cp = sm.add_constant(C_persons, has_constant="add")
    z = score_z(prob[keep])
    separating = separating_levels(Cp, yp[:, None], np.ones((len(yp), 1), bool))[0]
    res, out["method"] = (None if separating else _ordinary_lrt(Cp, z, yp)), "logit"
    if res is None:
        res = firth_lrt(np.column_stack([Cp, z]), yp, Cp.shape[1])
        out.update(method="firth", note=_firth_note(separating))
    if not res["converged"] or not np.isfinite(res["chi2"]):
        out.update(converged=False, p_value=1.0, lrt_p_value=1.0,
                   note=out["note"] + "; the fit did not converge: p set to 1, kept in the FDR family")
        return out
    beta, se = res["beta"], res["se"]
    out.update(lrt_chi2=res["chi2"], lrt_p_value=res["p"], p_value=res["p"], or_per_sd=float(np.exp(beta)),
               or_ci_low=float(np.exp(beta - 1.96 * se)), or_ci_high=float(np.exp(beta + 1.96 * se)),
               converged=True)
    return out


def separating_levels(X: np.ndarray, positive: np.ndarray, persons: np.ndarray, names=None) -> list[list[str]]:
    """Per column of ``positive`` (``[n, K]``, over the rows ``persons`` marks): the indicator
    columns of ``X`` (0/1 but the intercept: a covariate's level, sex) whose persons are all cases
    or all controls, by name (or column number). Such a level separates the phenotype: its
    coefficient has no finite estimate, so the test goes to Firth's regression."""
    X = np.asarray(X)
    ind = np.flatnonzero(np.all((X == 0) | (X == 1), axis=0) & (np.ptp(X, axis=0) > 0))
    if not len(ind):
        return [[] for _ in range(positive.shape[1])]
    Xi = X[:, ind].astype(np.float64)
    with_level = Xi.T @ persons.astype(np.float64)  # levels x phenotypes
    cases = Xi.T @ (positive & persons).astype(np.float64)
    hit = (with_level > 0) & ((cases == 0) | (cases == with_level))
    label = [names[j] if names is not None else f"column {j}" for j in ind]
    return [[label[i] for i in np.flatnonzero(hit[:, k])] for k in range(positive.shape[1])]


def _firth_note(separating: list[str]) -> str:
    if separating:
        return (f"{', '.join(separating)}: all cases or all controls among its persons (separation): "
                "Firth penalised LRT")
    return "ordinary fit separated or did not converge: Firth penalised LRT"


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


def design(age: np.ndarray, sex: np.ndarray, columns: dict | None = None, *, age_df: int = 5,
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


PHENOTYPES_PER_BLOCK = 64  # phenotypes fitted together (their folds' problems with them)
OOF_TOL = 1e-7  # convergence of the out-of-fold fits


def associate_all(y: np.ndarray, scores: np.ndarray, adjustment: Design, sex: np.ndarray, *, groups, order,
                  folds: int = 5, seed: int = 0, min_persons: int = 1, workers: int = 1,
                  progress=None) -> list[dict]:
    """:func:`associate` for every column of ``y`` (int8 ``[n, P]``: 1, 0, -1 excluded) and ``scores``
    at once, on the shared ``adjustment``: the same figures, fitted by :func:`reports.logistic.fit_many`
    in blocks of phenotypes (Firth's regression, one phenotype at a time, where a fit separates),
    the blocks in ``workers`` processes. ``progress(iterable, total=...)`` wraps the blocks.

    Rows where ``adjustment.usable`` is false (a numeric covariate missing) are left out of every
    phenotype. A person is a patient's latest analysed stay by ``order``; persons of unknown sex
    are not tested (the out-of-fold AUCs keep them)."""
    n, P = y.shape
    usable = adjustment.usable if adjustment.usable is not None else np.ones(n, bool)
    sex = np.asarray(sex)
    g = np.unique(np.asarray(groups), return_inverse=True)[1]
    sort = np.lexsort((np.arange(n), np.asarray(order), g))  # by patient, then time
    starts = np.r_[0, np.flatnonzero(np.diff(g[sort])) + 1]
    known_sex = sex != "U"

    def block(cols):
        analysed = (y[:, cols] >= 0) & usable[:, None]
        prob = np.where(analysed, scores[:, cols], 0.5)
        persons = _latest(analysed, sort, starts) & known_sex[:, None]
        rows = _test_block(adjustment, y[:, cols] == 1, prob, persons, min_persons)
        for r, pair in zip(rows, _oof_block(adjustment.matrix, y[:, cols] == 1, prob, analysed, folds, seed)):
            r.update(auc_age_sex=pair[0], auc_age_sex_ppg=pair[1])
        return rows

    blocks = [np.arange(a, min(P, a + PHENOTYPES_PER_BLOCK)) for a in range(0, P, PHENOTYPES_PER_BLOCK)]
    if workers > 1:
        from joblib import Parallel, delayed
        done = Parallel(n_jobs=workers, return_as="generator")(delayed(block)(c) for c in blocks)
    else:
        done = (block(c) for c in blocks)
    return [r for rows in (progress(done, total=len(blocks)) if progress else done) for r in rows]


def _latest(analysed: np.ndarray, sort: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per column: each patient's last analysed stay (``sort``: stays by patient then time)."""
    position = np.where(analysed[sort], np.arange(len(sort))[:, None], -1)
    last = np.maximum.reduceat(position, starts, axis=0)  # patients x columns
    mask = np.zeros(analysed.shape, bool)
    for j in range(analysed.shape[1]):
        found = last[:, j][last[:, j] >= 0]
        mask[sort[found], j] = True
    return mask


def _standardised_logit(prob: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`score_z` of each column over its ``rows`` (0 elsewhere)."""
    x = np.log(np.clip(prob, 1e-7, 1 - 1e-7) / (1 - np.clip(prob, 1e-7, 1 - 1e-7)))
    count = rows.sum(0)
    mean = np.where(rows, x, 0).sum(0) / np.maximum(count, 1)
    sd = np.sqrt(np.where(rows, (x - mean) ** 2, 0).sum(0) / np.maximum(count, 1))
    z = (x - mean) / np.where(sd > 0, sd, 1.0)
    return np.where(rows, z, 0.0)


def _test_block(adjustment: Design, positive, prob, persons, min_persons: int) -> list[dict]:
    """The person-level likelihood-ratio test of each column (see :func:`associate`)."""
    X = adjustment.matrix
    Y = positive.astype(float)
    separating = separating_levels(X, positive, persons, adjustment.names)
    z = _standardised_logit(prob, persons)
    n_pos = (positive & persons).sum(0)
    n_neg = persons.sum(0) - n_pos
    reduced = fit_many(X, Y, persons)
    full = fit_many(X, Y, persons, z)
    rows = []
    for k in range(Y.shape[1]):
        r = dict.fromkeys(COLUMNS, np.nan) | {"n_pos_patients": int(n_pos[k]), "n_neg_patients": int(n_neg[k]),
                                              "method": "none", "converged": False, "note": ""}
        if min(n_pos[k], n_neg[k]) < max(min_persons, 1):
            r["note"] = f"not tested: {n_pos[k]} positive and {n_neg[k]} negative persons (fewer than {min_persons})"
            rows.append(r)
            continue
        beta, se = full.beta[k, -1], np.sqrt(full.var_last[k]) if full.var_last[k] > 0 else np.nan
        # as associate(): a separating level, fitted probabilities of 0 or 1, or a diverging score
        # coefficient send the test to Firth's regression
        ordinary = (not separating[k] and reduced.converged[k] and full.converged[k] and abs(beta) <= MAX_ABS_BETA
                    and np.isfinite(se) and full.margin[k] >= 1e-8)
        # the fitted model's coefficients by name (the page's detail view); a column constant over
        # the persons tested (a sex indicator of a sex-specific phenotype) has none
        varies = np.r_[True, np.ptp(X[persons[:, k]][:, 1:], axis=0) > 0, True]
        coefficients = np.full(X.shape[1] + 1, np.nan)
        if ordinary:
            chi2 = max(2.0 * (full.loglik[k] - reduced.loglik[k]), 0.0)
            res, r["method"] = {"chi2": chi2, "p": float(stats.chi2.sf(chi2, 1)), "beta": float(beta), "se": se,
                                "converged": True}, "logit"
            coefficients[varies] = full.beta[k][varies]
        else:
            rows_k = persons[:, k]
            Xk = np.column_stack([X[rows_k][:, varies[:-1]], z[rows_k, k]])
            res = firth_lrt(Xk, Y[rows_k, k], Xk.shape[1] - 1)
            r.update(method="firth", note=_firth_note(separating[k]))
            coefficients[varies] = res["coefficients"]
        _finish(r, res)
        if r["converged"]:
            r["coefficients"] = coefficients
        rows.append(r)
    return rows


def _finish(out: dict, res: dict) -> None:
    if not res["converged"] or not np.isfinite(res["chi2"]):
        out.update(converged=False, p_value=1.0, lrt_p_value=1.0,
                   note=out["note"] + "; the fit did not converge: p set to 1, kept in the FDR family")
        return
    beta, se = res["beta"], res["se"]
    out.update(lrt_chi2=res["chi2"], lrt_p_value=res["p"], p_value=res["p"], or_per_sd=float(np.exp(beta)),
               or_ci_low=float(np.exp(beta - 1.96 * se)), or_ci_high=float(np.exp(beta + 1.96 * se)),
               converged=True)


def _oof_block(X, positive, prob, analysed, folds: int, seed: int) -> list[tuple[float, float]]:
    """Out-of-fold AUCs of the adjustment alone and with the score, for each column: scikit-learn's
    ``StratifiedKFold`` over the analysed stays, ``LogisticRegression(C=1)`` fits (as
    :func:`associate`'s), all folds of all columns fitted together."""
    n, K = positive.shape
    Y = positive.astype(float)
    z = _standardised_logit(prob, analysed)
    n_folds = np.minimum(folds, np.minimum((positive & analysed).sum(0), (~positive & analysed).sum(0)))
    fold = np.full((n, K), -1)
    for k in range(K):
        if n_folds[k] >= 2:
            rows = np.flatnonzero(analysed[:, k])
            cv = StratifiedKFold(n_splits=int(n_folds[k]), shuffle=True, random_state=seed)
            for f, (_, test) in enumerate(cv.split(np.zeros(len(rows)), Y[rows, k])):
                fold[rows[test], k] = f
    problems = [(k, f) for k in range(K) for f in range(int(n_folds[k])) if n_folds[k] >= 2]
    if not problems:
        return [(np.nan, np.nan)] * K
    ks, fs = np.array([k for k, _ in problems]), np.array([f for _, f in problems])
    train = (fold[:, ks] >= 0) & (fold[:, ks] != fs)
    test = fold[:, ks] == fs
    oof = np.zeros((2, n, K))
    for m, (Z, Zk) in enumerate(((None, None), (z, z[:, ks]))):
        # each fold's fit starts from the fit on all of the phenotype's stays (a few Newton steps
        # away); the AUCs need the ranking, not the ninth digit (scikit-learn stops at 1e-4)
        whole = fit_many(X, Y, analysed, Z, l2=1.0, tol=OOF_TOL)
        fits = fit_many(X, Y[:, ks], train, Zk, l2=1.0, tol=OOF_TOL, start=whole.beta[ks])
        eta = predict_many(X, fits.beta, Zk)
        for i, (k, _) in enumerate(problems):
            oof[m, test[:, i], k] = eta[test[:, i], i]
    out = []
    for k in range(K):
        if n_folds[k] < 2:
            out.append((np.nan, np.nan))
            continue
        rows = analysed[:, k]
        out.append(tuple(auc(oof[m, rows, k], positive[rows, k]) for m in range(2)))
    return out


def adjust(p_values: np.ndarray, alpha: float = 0.05):
    """Benjamini-Hochberg q-values and Bonferroni flags over the finite p-values; NaN stays NaN / False."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    bonf = ok & (p < alpha / max(int(ok.sum()), 1))
    return q, bonf
