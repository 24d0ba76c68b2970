"""The association test's machinery: many logistic regressions fitted at once against statsmodels
and scikit-learn fitted one at a time, the covariates' coding against statsmodels' formula
interface, and the batched test against the phenotype-by-phenotype one."""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm

from reports.logistic import fit_many, predict_many


def problems(seed: int, n: int = 600, p: int = 5, K: int = 7):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    Z = rng.normal(size=(n, K))
    eta = X @ rng.normal(size=(p, K)) * 0.5 + 0.7 * Z - 1.5
    Y = (rng.random((n, K)) < 1 / (1 + np.exp(-eta))).astype(float)
    M = rng.random((n, K)) < 0.85
    return X, Y, M, Z


@pytest.mark.parametrize("seed", range(3))
def test_unpenalised_fits_equal_statsmodels_one_at_a_time(seed):
    X, Y, M, Z = problems(seed)
    reduced = fit_many(X, Y, M)
    full = fit_many(X, Y, M, Z)
    for k in range(Y.shape[1]):
        rows = M[:, k]
        a = sm.Logit(Y[rows, k], X[rows]).fit(disp=0)
        b = sm.Logit(Y[rows, k], np.column_stack([X[rows], Z[rows, k]])).fit(disp=0)
        np.testing.assert_allclose(reduced.beta[k], a.params, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(full.beta[k], b.params, rtol=1e-5, atol=1e-7)
        assert reduced.loglik[k] == pytest.approx(a.llf, rel=1e-9) and full.loglik[k] == pytest.approx(b.llf, rel=1e-9)
        assert full.var_last[k] == pytest.approx(b.bse[-1] ** 2, rel=1e-4)
    assert reduced.converged.all() and full.converged.all()


def test_penalised_fits_equal_scikit_learn():
    from sklearn.linear_model import LogisticRegression
    X, Y, M, Z = problems(7)
    fits = fit_many(X, Y, M, Z, l2=1.0)
    eta = predict_many(X, fits.beta, Z)
    for k in range(Y.shape[1]):
        rows = M[:, k]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(
                np.column_stack([X[rows, 1:], Z[rows, k]]), Y[rows, k])
        np.testing.assert_allclose(fits.beta[k], np.r_[model.intercept_, model.coef_[0]], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(eta[rows, k], model.decision_function(np.column_stack([X[rows, 1:], Z[rows, k]])),
                                   rtol=1e-5, atol=1e-6)


def test_a_column_constant_over_a_problems_rows_stays_at_zero():
    X, Y, M, Z = problems(3)
    X = np.column_stack([X, (np.arange(len(X)) % 2).astype(float)])  # an indicator
    M[:, 0] &= X[:, -1] == 1  # problem 0 sees only rows where it is 1: collinear with the intercept
    fits = fit_many(X, Y, M, Z)
    rows = M[:, 0]
    ref = sm.Logit(Y[rows, 0], np.column_stack([X[rows, :-1], Z[rows, 0]])).fit(disp=0)
    assert fits.loglik[0] == pytest.approx(ref.llf, rel=1e-7) and fits.converged[0]


def test_separation_shows_as_a_vanishing_margin():
    rng = np.random.default_rng(0)
    n = 200
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    Z = rng.normal(size=(n, 2))
    Y = np.column_stack([(Z[:, 0] > 0), rng.random(n) < 0.3]).astype(float)  # 0: perfectly separated by Z
    fits = fit_many(X, Y, np.ones((n, 2), bool), Z)
    assert fits.margin[0] < 1e-6 and fits.margin[1] > 1e-3
