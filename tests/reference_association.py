"""The association of one phenotype with statsmodels and scikit-learn, one fit at a time: the
slow, obvious reference that ``reports.association.associate_all`` (every phenotype at once, on
one shared design) is tested against."""

from __future__ import annotations

import warnings

import numpy as np
import statsmodels.api as sm
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from phewas.base.auc import auc
from reports.adjustment import _informative, rcs_basis
from reports.association import COLUMNS, MAX_ABS_BETA, _firth_note, latest_per_patient, score_z, separating_levels
from reports.firth import firth_lrt


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
        (:func:`reports.adjustment.adjustment_design`, without its intercept); default: age and
        sex, built on these stays (the out-of-fold models) and on the persons tested (the test).

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
