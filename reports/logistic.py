"""Many logistic regressions at once that share their covariates: the association test and the
out-of-fold AUCs of ``report`` for every phenotype, fitted together.

Each problem ``k`` has its own labels ``Y[:, k]``, its own rows ``M[:, k]`` (a mask over the
shared design ``X``) and optionally its own last column ``Z[:, k]`` (a phenotype's score). Newton's
method runs on all problems at once: the Hessians ``X' W_k X`` of all problems come from one matrix
product of the rows' outer products with the weights, so a thousand problems cost little more than
one pass over the rows. A step that does not lower a problem's objective is halved. With ``l2`` the
objective adds ``l2 / 2 |beta|^2`` over every coefficient but the intercept (scikit-learn's
``LogisticRegression(C=1 / l2)``, which these fits reproduce); without it a tiny ridge keeps a
column that is constant over a problem's rows (a sex indicator in a sex-specific phenotype) at zero
without changing the likelihood. ``tests/reports/test_logistic.py`` checks the fits against
statsmodels' and scikit-learn's, one problem at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit

RIDGE = 1e-8  # keeps columns that are constant over a problem's rows at zero


@dataclass
class Fits:
    """``beta [K, q]`` (``q`` = the design's columns, plus one for ``Z``), the log-likelihood of each
    fit (unpenalised), whether it converged, the variance of the last coefficient (from the inverse
    Hessian) and the largest fitted probability's distance from 0 or 1 (separation shows as ~0)."""

    beta: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    var_last: np.ndarray
    margin: np.ndarray


def fit_many(X: np.ndarray, Y: np.ndarray, M: np.ndarray, Z: np.ndarray | None = None, *, l2: float = 0.0,
             max_iter: int = 100, tol: float = 1e-9, max_halvings: int = 30, start: np.ndarray | None = None) -> Fits:
    """Fit ``K`` logistic regressions (see the module's description). ``X [n, p]`` holds the
    intercept in its first column; ``Y``, ``M`` and ``Z`` are ``[n, K]``. ``start`` ``[K, q]``: where
    Newton's method begins (default: the intercept at each problem's prevalence); ``tol``: the
    relative change of the objective, or the step, at which a problem has converged."""
    X = np.asarray(X, np.float64)
    n, p = X.shape
    Y, M = np.asarray(Y, np.float64), np.asarray(M, np.float64)
    K = Y.shape[1]
    q = p + (Z is not None)
    Zf = None if Z is None else np.where(M > 0, np.asarray(Z, np.float64), 0.0)
    outer = (X[:, :, None] * X[:, None, :]).reshape(n, p * p)
    penalty = np.full(q, l2 if l2 else RIDGE)
    penalty[0] = 0.0
    rows = M.sum(0)
    prevalence = np.clip((Y * M).sum(0) / np.maximum(rows, 1), 1e-6, 1 - 1e-6)
    beta = np.zeros((K, q))
    beta[:, 0] = np.log(prevalence / (1 - prevalence))
    if start is not None:
        beta = np.array(start, np.float64)
    sign = 2 * Y - 1  # the log-likelihood of a row is log_expit(sign * eta)

    def columns(a, cols):  # a view where every problem is wanted: no copy of n x K
        return a if len(cols) == a.shape[1] else a[:, cols]

    def linear(b, cols):
        eta = X @ b[:, :p].T
        return eta + columns(Zf, cols) * b[:, p] if Zf is not None else eta

    def objective(eta, b, cols):
        ll = (columns(M, cols) * log_expit(columns(sign, cols) * eta)).sum(0)
        return -ll + 0.5 * (penalty * b ** 2).sum(1), ll

    def hessian(W, cols):  # the penalised objective's Hessians [len(cols), q, q], W the rows' weights
        H = np.empty((len(cols), q, q))
        H[:, :p, :p] = (outer.T @ W).T.reshape(len(cols), p, p)
        if Zf is not None:
            Zc = columns(Zf, cols)
            WZ = W * Zc
            H[:, :p, p] = H[:, p, :p] = (X.T @ WZ).T
            H[:, p, p] = (WZ * Zc).sum(0)
        return H + np.eye(q) * penalty

    everything = np.arange(K)
    eta = linear(beta, everything)
    obj, ll = objective(eta, beta, everything)
    converged = np.zeros(K, bool)
    for _ in range(max_iter):
        A = np.flatnonzero(~converged)  # only the problems still moving cost a pass over the rows
        if not len(A):
            break
        Ma = columns(M, A)
        prob = expit(columns(eta, A))
        R = Ma * (columns(Y, A) - prob)
        W = Ma * prob * (1 - prob)
        grad = np.empty((len(A), q))
        grad[:, :p] = (X.T @ R).T
        if Zf is not None:
            grad[:, p] = (columns(Zf, A) * R).sum(0)
        grad -= penalty * beta[A]
        H = hessian(W, A)
        step = np.linalg.solve(H, grad[:, :, None])[:, :, 0]
        t = np.ones(len(A))
        todo = np.arange(len(A))  # problems (positions in A) whose step is not yet accepted
        moved = np.zeros(len(A), bool)
        change = np.zeros(len(A))
        for _ in range(max_halvings):  # halve each problem's step until its objective does not rise
            cols = A[todo]
            candidate = beta[cols] + t[todo, None] * step[todo]
            eta_c = linear(candidate, cols)
            obj_c, ll_c = objective(eta_c, candidate, cols)
            ok = obj_c <= obj[cols] + 1e-12 * np.abs(obj[cols])
            took = cols[ok]
            change[todo[ok]] = obj[took] - obj_c[ok]
            if ok.all() and len(took) == K:
                eta = eta_c
            else:
                eta[:, took] = eta_c[:, ok]
            beta[took], obj[took], ll[took] = candidate[ok], obj_c[ok], ll_c[ok]
            moved[todo[ok]] = True
            todo = todo[~ok]
            if not len(todo):
                break
            t[todo] /= 2
        size = np.where(moved, np.abs(t[:, None] * step).max(1), 0.0)
        converged[A] = (size < tol) | (np.abs(change) < tol * np.maximum(1.0, np.abs(obj[A])))
    prob = expit(eta)
    with np.errstate(invalid="ignore"):
        var_last = np.linalg.pinv(hessian(M * prob * (1 - prob), everything))[:, -1, -1]
    margin = np.where(M > 0, np.minimum(prob, 1 - prob), np.inf).min(0)
    return Fits(beta, ll, converged, var_last, margin)


def predict_many(X: np.ndarray, beta: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
    """Linear predictors ``[n, K]`` of fitted problems on the rows of ``X`` (and ``Z``)."""
    p = X.shape[1]
    eta = np.asarray(X, np.float64) @ beta[:, :p].T
    return eta + np.asarray(Z, np.float64) * beta[:, p] if Z is not None else eta
