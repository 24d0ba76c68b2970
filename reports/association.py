"""Confound-aware association: does the PPG score add anything beyond age and sex?

For one phenotype: out-of-fold AUC of a logistic regression on age and sex alone and on age, sex
and the score; and the likelihood-ratio test of adding the score to age and sex (statsmodels
``Logit``), with the odds ratio per standard deviation of the score.

Stays of one patient are not independent (MC-MED patients return; a comorbidity shared by one
frequent visitor repeats in every one of their stays), and a test that treats stays as
independent overstates the evidence. So the headline ``p_value`` is the Wald test of the score
with standard errors clustered by patient (sandwich estimator); the likelihood-ratio statistic
and its naive p-value are kept as ``lrt_chi2`` and ``lrt_p_value``, and are identical in spirit
when every patient has one stay. Age enters as a standardised
linear and quadratic term (risk is rarely linear in age); sex as indicators for F and U, dropped
where constant (sex-specific phenotypes). The score is the logit of the predicted probability,
standardised within the phenotype's analysed stays.
"""

from __future__ import annotations

import warnings

import numpy as np
import statsmodels.api as sm
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

COLUMNS = ("auc_age_sex", "auc_age_sex_ppg", "lrt_chi2", "lrt_p_value", "or_per_sd", "or_ci_low", "or_ci_high",
           "p_value")


def covariates(age: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """Age (standardised, linear and squared) and sex indicators; constant columns dropped."""
    a = (age - age.mean()) / (age.std() or 1.0)
    cols = [a, a ** 2 - (a ** 2).mean(), (sex == "F").astype(float), (sex == "U").astype(float)]
    return np.column_stack([c for c in cols if np.ptp(c) > 0]) if len(age) else np.zeros((0, 0))


def score_z(prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob.astype(np.float64), 1e-7, 1 - 1e-7)
    x = np.log(p / (1 - p))
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x - x.mean()


def _oof_auc(X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> float:
    if X.shape[1] == 0:
        return 0.5
    oof = np.zeros(len(y))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in cv.split(X, y):
        model = LogisticRegression(max_iter=200).fit(X[train], y[train])
        oof[test] = model.decision_function(X[test])
    return float(roc_auc_score(y, oof))


def associate(y: np.ndarray, prob: np.ndarray, age: np.ndarray, sex: np.ndarray, *, groups=None,
              folds: int = 5, seed: int = 0) -> dict:
    """Association figures for one phenotype (``y`` 0/1 over its analysed stays); ``groups`` are
    the stays' patient ids (default: every stay its own patient)."""
    y = np.asarray(y, dtype=np.int64)
    C = covariates(np.asarray(age, dtype=np.float64), np.asarray(sex))
    x = score_z(np.asarray(prob))
    folds = int(min(folds, y.sum(), len(y) - y.sum()))
    out = dict.fromkeys(COLUMNS, np.nan)
    if folds >= 2:
        out["auc_age_sex"] = _oof_auc(C, y, folds, seed)
        out["auc_age_sex_ppg"] = _oof_auc(np.column_stack([C, x]), y, folds, seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reduced = sm.Logit(y, sm.add_constant(C, has_constant="add")).fit(disp=0, maxiter=100)
            codes = np.unique(np.asarray(groups if groups is not None else np.arange(len(y))), return_inverse=True)[1]
            full = sm.Logit(y, sm.add_constant(np.column_stack([C, x]), has_constant="add")).fit(
                disp=0, maxiter=100, cov_type="cluster", cov_kwds={"groups": codes})
        lr = max(2.0 * (full.llf - reduced.llf), 0.0)
        beta, se = full.params[-1], full.bse[-1]  # se: clustered by patient
        out.update(lrt_chi2=lr, lrt_p_value=float(stats.chi2.sf(lr, 1)),
                   p_value=float(2 * stats.norm.sf(abs(beta / se))), or_per_sd=float(np.exp(beta)),
                   or_ci_low=float(np.exp(beta - 1.96 * se)), or_ci_high=float(np.exp(beta + 1.96 * se)))
    except (np.linalg.LinAlgError, ValueError) as err:  # separation, singular design
        out["note"] = f"{type(err).__name__}: {err}"
    return out


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up: running minimum of p * n / rank from the top)."""
    p = np.asarray(p, dtype=np.float64)
    n = len(p)
    order = np.argsort(p)
    scaled = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def adjust(p_values: np.ndarray, alpha: float = 0.05):
    """Benjamini-Hochberg q-values and Bonferroni flags over the finite p-values; NaN stays NaN / False."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    q[ok] = bh_qvalues(p[ok])
    bonf = ok & (p < alpha / max(int(ok.sum()), 1))
    return q, bonf
