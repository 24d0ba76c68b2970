"""Confound-aware association: does the PPG score add anything beyond age, sex and the covariates
a user names?

For each phenotype: out-of-fold AUC of a logistic regression on the adjustment alone and on the
adjustment and the score, over the analysed stays; and the likelihood-ratio test of adding the
score to the adjustment, with the odds ratio per standard deviation of the score.
:func:`associate_all` does this for every phenotype at once on one shared design
(:mod:`reports.adjustment`, fitted by :mod:`reports.logistic`); ``tests/reference_association.py``
does it for one phenotype with statsmodels and scikit-learn, the reference it is tested against.

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

import numpy as np
from scipy import stats
from sklearn.model_selection import StratifiedKFold

from phewas.base.auc import auc

from .adjustment import Design
from .firth import firth_lrt
from .logistic import fit_many, predict_many

COLUMNS = ("auc_age_sex", "auc_age_sex_ppg", "lrt_chi2", "lrt_p_value", "or_per_sd", "or_ci_low", "or_ci_high",
           "p_value")
COUNT_COLUMNS = ("n_pos_patients", "n_neg_patients")
MAX_ABS_BETA = 15.0  # beyond this, the score's coefficient signals (quasi-)separation


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


PHENOTYPES_PER_BLOCK = 64  # phenotypes fitted together (their folds' problems with them)
OOF_TOL = 1e-7  # convergence of the out-of-fold fits


def associate_all(y: np.ndarray, scores: np.ndarray, adjustment: Design, sex: np.ndarray, *, groups, order,
                  folds: int = 5, seed: int = 0, min_persons: int = 1, workers: int = 1,
                  progress=None) -> list[dict]:
    """The association of every column of ``y`` (int8 ``[n, P]``: 1, 0, -1 excluded) and ``scores``
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
    """The person-level likelihood-ratio test of each column (see :func:`associate_all`)."""
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
        # a separating level, fitted probabilities of 0 or 1, or a diverging score
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
    ``StratifiedKFold`` over the analysed stays, L2-penalised fits as scikit-learn's
    ``LogisticRegression(C=1)``, all folds of all columns fitted together."""
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


