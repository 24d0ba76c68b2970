"""Confound-aware association: does the PPG score add anything beyond age and sex?

For one phenotype: out-of-fold AUC of a logistic regression on age and sex alone and on age, sex
and the score, over the analysed stays; and the likelihood-ratio test of adding the score to age
and sex (statsmodels ``Logit``), with the odds ratio per standard deviation of the score.

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

import numpy as np
import statsmodels.api as sm
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from .firth import firth_lrt

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


def model_description(age_df: int, interaction: bool) -> str:
    """The adjustment model, as recorded in ``summary.json``."""
    return (f"logit P(phenotype) ~ rcs(age, {age_df} df, knots at quantiles) + sex"
            + (" + rcs(age) x female" if interaction else "") + " [+ standardised logit of the PPG score]")


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
              min_persons: int = 1) -> dict:
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

    The ordinary fit is used where it converges without separation; otherwise Firth's penalised
    regression (:mod:`reports.firth`) and its penalised likelihood-ratio test (``method``
    "firth"); a fit that still fails gets ``p_value`` 1 and ``converged`` False, and stays in the
    multiple-testing family.
    """
    y = np.asarray(y, dtype=np.int64)
    age, sex, prob = np.asarray(age, dtype=np.float64), np.asarray(sex), np.asarray(prob)
    C = covariates(age, sex, age_df, interaction)
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
    Cp = sm.add_constant(covariates(age[keep], sex[keep], age_df, interaction), has_constant="add")
    z = score_z(prob[keep])
    res, out["method"] = _ordinary_lrt(Cp, z, yp), "logit"
    if res is None:
        res = firth_lrt(np.column_stack([Cp, z]), yp, Cp.shape[1])
        out.update(method="firth", note="ordinary fit separated or did not converge: Firth penalised LRT")
    if not res["converged"] or not np.isfinite(res["chi2"]):
        out.update(converged=False, p_value=1.0, lrt_p_value=1.0,
                   note=out["note"] + "; the fit did not converge: p set to 1, kept in the FDR family")
        return out
    beta, se = res["beta"], res["se"]
    out.update(lrt_chi2=res["chi2"], lrt_p_value=res["p"], p_value=res["p"], or_per_sd=float(np.exp(beta)),
               or_ci_low=float(np.exp(beta - 1.96 * se)), or_ci_high=float(np.exp(beta + 1.96 * se)),
               converged=True)
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
