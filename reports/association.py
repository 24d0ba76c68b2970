"""Confound-aware association: does the PPG score add anything beyond age and sex?

For one phenotype: out-of-fold AUC of a logistic regression on age and sex alone and on age, sex
and the score, over the analysed stays; and the likelihood-ratio test of adding the score to age
and sex (statsmodels ``Logit``), with the odds ratio per standard deviation of the score.

The test is run on persons, as PheWAS does: one stay per patient, the patient's latest analysed
stay (its label carries all earlier history). Stays of one patient are not independent (a
comorbidity of one frequent visitor repeats in every one of their stays), and a test over all
stays overstates the evidence: over twelve simulated studies (``bench/bench_fdr.py``) a
stay-level likelihood-ratio test put 11.6% of null p-values below 0.05, a patient-clustered
sandwich Wald test 6.6%, and this test 4.5%. ``p_value`` and ``lrt_p_value`` are the same number (the issue's
column names; both kept); ``n_pos_patients`` and ``n_neg_patients`` are the persons tested.
Age enters as a standardised linear and quadratic term (risk is rarely linear in age); sex as
indicators for F and U, dropped where constant (sex-specific phenotypes). The score is the logit
of the predicted probability, standardised within the persons tested.
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
COUNT_COLUMNS = ("n_pos_patients", "n_neg_patients")


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
    return float(roc_auc_score(y, oof))


def associate(y: np.ndarray, prob: np.ndarray, age: np.ndarray, sex: np.ndarray, *, groups=None, order=None,
              folds: int = 5, seed: int = 0) -> dict:
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
    """
    y = np.asarray(y, dtype=np.int64)
    age, sex, prob = np.asarray(age, dtype=np.float64), np.asarray(sex), np.asarray(prob)
    C = covariates(age, sex)
    folds = int(min(folds, y.sum(), len(y) - y.sum()))
    out = dict.fromkeys(COLUMNS, np.nan)
    if folds >= 2:
        out["auc_age_sex"] = _oof_auc(C, y, folds, seed)
        out["auc_age_sex_ppg"] = _oof_auc(np.column_stack([C, score_z(prob)]), y, folds, seed)
    keep = np.ones(len(y), dtype=bool) if groups is None else \
        latest_per_patient(groups, np.arange(len(y)) if order is None else order)
    yp = y[keep]
    out.update(n_pos_patients=int(yp.sum()), n_neg_patients=int(len(yp) - yp.sum()))
    Cp = sm.add_constant(covariates(age[keep], sex[keep]), has_constant="add")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reduced = sm.Logit(yp, Cp).fit(disp=0, maxiter=100)
            full = sm.Logit(yp, np.column_stack([Cp, score_z(prob[keep])])).fit(disp=0, maxiter=100)
        lr = max(2.0 * (full.llf - reduced.llf), 0.0)
        p = float(stats.chi2.sf(lr, 1))
        beta, se = full.params[-1], full.bse[-1]
        out.update(lrt_chi2=lr, lrt_p_value=p, p_value=p, or_per_sd=float(np.exp(beta)),
                   or_ci_low=float(np.exp(beta - 1.96 * se)), or_ci_high=float(np.exp(beta + 1.96 * se)))
    except (np.linalg.LinAlgError, ValueError) as err:  # separation, singular design, one class
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
