"""Firth-penalised logistic regression against a direct optimisation of the penalised
likelihood (written out here, not shared), its use under separation, and calibration on rare
simulated nulls where ordinary fits separate."""

import numpy as np
import pytest
import statsmodels.api as sm
from reference_association import associate
from scipy import optimize, stats

from reports.firth import firth_fit, firth_lrt


def direct_penalised_max(X, y, fixed=None):
    """Maximise l(b) + 1/2 log det(X' W X) with a general-purpose optimiser."""
    free = [i for i in range(X.shape[1]) if i != fixed]

    def negative(b_free):
        b = np.zeros(X.shape[1])
        b[free] = b_free
        eta = X @ b
        p = 1 / (1 + np.exp(-eta))
        ll = np.sum(y * eta - np.log1p(np.exp(eta)))
        _, logdet = np.linalg.slogdet(X.T @ np.diag(p * (1 - p)) @ X)
        return -(ll + 0.5 * logdet)

    res = optimize.minimize(negative, np.zeros(len(free)), method="BFGS", options={"gtol": 1e-10})
    b = np.zeros(X.shape[1])
    b[free] = res.x
    return b, -res.fun


def separated(rng, n=60):
    x = rng.normal(size=n)
    X = sm.add_constant(np.column_stack([rng.normal(size=n), x]))
    y = (x > 0.3).astype(float)  # the last column separates the classes perfectly
    return X, y


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_direct_optimisation(seed):
    rng = np.random.default_rng(seed)
    n = 80
    X = sm.add_constant(rng.normal(size=(n, 3)))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ [-1, 0.8, -0.5, 0.3])))).astype(float)
    fit = firth_fit(X, y)
    b, ll = direct_penalised_max(X, y)
    assert fit.converged
    np.testing.assert_allclose(fit.beta, b, atol=1e-5)
    assert fit.loglik == pytest.approx(ll, abs=1e-7)
    b0, ll0 = direct_penalised_max(X, y, fixed=2)
    test = firth_lrt(X, y, 2)
    assert test["chi2"] == pytest.approx(2 * (ll - ll0), abs=1e-5)
    assert test["p"] == pytest.approx(stats.chi2.sf(2 * (ll - ll0), 1), abs=1e-6)


def test_finite_under_separation_where_maximum_likelihood_diverges():
    X, y = separated(np.random.default_rng(2))
    fit = firth_fit(X, y)
    b, ll = direct_penalised_max(X, y)
    assert fit.converged and np.all(np.isfinite(fit.beta))  # ordinary ML: |beta| -> infinity
    np.testing.assert_allclose(fit.beta, b, atol=1e-4)
    # the association test falls back to it and says so
    rng = np.random.default_rng(3)
    n = 200
    age, sex = rng.uniform(20, 90, n), rng.choice(["F", "M"], n)
    prob = rng.random(n)
    y = (prob > 0.93).astype(int)  # the score separates the phenotype
    r = associate(y, prob, age, sex, folds=2)
    assert r["method"] == "firth" and r["converged"] and "Firth" in r["note"]
    assert np.isfinite(r["or_per_sd"]) and r["or_per_sd"] < 1e3 and r["p_value"] < 1e-6


def test_too_few_positive_persons_are_not_tested():
    rng = np.random.default_rng(4)
    n = 300
    y = np.zeros(n, dtype=int)
    y[:2] = 1
    r = associate(y, rng.random(n), rng.uniform(20, 90, n), rng.choice(["F", "M"], n), min_persons=5)
    assert r["method"] == "none" and np.isnan(r["p_value"]) and "2 positive" in r["note"]


@pytest.mark.slow
def test_calibrated_on_rare_nulls_with_separation():
    """About 7 positive persons of 300, random scores: ordinary fits often separate."""
    rng = np.random.default_rng(0)
    p, methods = [], []
    for _ in range(200):
        n = 300
        age, sex = np.round(rng.uniform(18, 90, n)), rng.choice(["F", "M"], n)
        y = (rng.random(n) < 0.025).astype(int)
        y[:2] = 1
        r = associate(y, rng.random(n), age, sex, folds=2, min_persons=2)
        p.append(r["p_value"])
        methods.append(r["method"])
    assert methods.count("firth") > 20  # the fallback was exercised
    assert np.mean(np.array(p) < 0.05) <= 0.07


def test_unknown_sex_is_left_out_of_the_test_not_separating_it():
    """A handful of persons of unknown sex, none a case: as an indicator they would separate."""
    rng = np.random.default_rng(6)
    n = 1000
    age, sex = rng.uniform(20, 90, n), rng.choice(["F", "M"], n)
    sex[:5] = "U"
    y = (rng.random(n) < 0.1).astype(int)
    y[:5] = 0
    prob = 1 / (1 + np.exp(-(rng.normal(size=n) + 0.5 * y)))
    r = associate(y, prob, age, sex, folds=2)
    assert r["method"] == "logit" and r["n_pos_patients"] + r["n_neg_patients"] == n - 5
    ref = associate(y[5:], prob[5:], age[5:], sex[5:], folds=2)
    assert r["p_value"] == pytest.approx(ref["p_value"], rel=1e-9)
