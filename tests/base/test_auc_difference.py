"""Paired AUC differences (DeLong 1988; Obuchowski 1997 when clustered), checked against DeLong's
covariance-matrix formulation written out slowly, a per-pair loop of the clustered form, the
single-AUC variance, and calibration on nulls that our simulator did not write: two different
models with the same true AUC, frequent visitors, a monotone transform, a shared patient effect."""

import numpy as np
import pytest
from scipy import stats

from phewas.base.auc import auc_delong, auc_difference
from reports.intervals import difference_interval, difference_test


def psi(x, y):
    return np.where(x > y, 1.0, np.where(x == y, 0.5, 0.0))


def slow_paired_delong(a, b, y):
    """DeLong et al. (1988): V10 and V01 per model, their 2 x 2 covariance matrices S10 and S01,
    var(A - B) = c' (S10 / m + S01 / n) c with c = (1, -1)."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    v10 = np.array([[psi(s[i], s[neg]).mean() for i in pos] for s in (a, b)])
    v01 = np.array([[psi(s[pos], s[j]).mean() for j in neg] for s in (a, b)])
    auc = v10.mean(axis=1)
    S = np.cov(v10) / len(pos) + np.cov(v01) / len(neg)
    c = np.array([1.0, -1.0])
    return auc[0] - auc[1], c @ S @ c


def slow_paired_clustered(a, b, y, groups):
    """Obuchowski's clustered variance of the difference, one cluster at a time."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    M, N = len(pos), len(neg)
    d10, d01 = [], []
    aucs = [np.mean([psi(s[i], s[neg]).mean() for i in pos]) for s in (a, b)]
    for c in sorted(set(groups[pos]) | set(groups[neg])):
        ps, ns = pos[groups[pos] == c], neg[groups[neg] == c]
        parts10, parts01 = [], []
        for s, auc in zip((a, b), aucs):
            parts10.append(sum(psi(s[i], s[neg]).mean() for i in ps) - len(ps) * auc)
            parts01.append(sum(psi(s[pos], s[j]).mean() for j in ns) - len(ns) * auc)
        d10.append(parts10[0] - parts10[1])
        d01.append(parts01[0] - parts01[1])
    d10, d01 = np.array(d10), np.array(d01)
    i10, i01 = len(set(groups[pos])), len(set(groups[neg]))
    ia = len(set(groups[pos]) | set(groups[neg]))
    var = (i10 / ((i10 - 1) * M * M) * (d10 ** 2).sum() + i01 / ((i01 - 1) * N * N) * (d01 ** 2).sum()
           + 2 * ia / ((ia - 1) * M * N) * (d10 * d01).sum())
    return aucs[0] - aucs[1], var


def two_models(rng, n_patients, effect_a, effect_b, shared=0.6, prevalence=0.15, frequent=True):
    """Two models scoring the same stays of returning patients. Each score carries a patient
    effect (correlated between the models by ``shared``) and stay noise; model b's score is
    exp(.) of its latent (a monotone transform: same AUC, other scale). With equal effects the
    true AUCs are equal."""
    if frequent:  # 15% of patients return up to 20 times
        sizes = np.where(rng.random(n_patients) < 0.15, np.minimum(rng.geometric(0.12, n_patients), 20),
                         rng.geometric(0.6, n_patients))
    else:
        sizes = np.ones(n_patients, dtype=int)
    g = np.repeat(np.arange(n_patients), sizes)
    y = (rng.random(n_patients) < prevalence).astype(int)[g]
    u = rng.normal(size=n_patients)
    u_b = shared * u + np.sqrt(1 - shared ** 2) * rng.normal(size=n_patients)
    a = u[g] + effect_a * y + rng.normal(size=len(g))
    b = np.exp(u_b[g] + effect_b * y + rng.normal(size=len(g)))
    return a, b, y, g


def test_unclustered_equals_delong_paired_formula_with_ties_and_left_out_stays():
    rng = np.random.default_rng(0)
    n = 160
    y = (rng.random((n, 3)) < 0.3).astype(int)
    y[rng.random((n, 3)) < 0.1] = -1
    a = np.round(rng.normal(size=(n, 3)) + y, 1)  # ties
    b = np.round(0.5 * a + rng.normal(size=(n, 3)), 1)
    r = auc_difference(a, b, y)
    for j in range(3):
        keep = y[:, j] >= 0
        diff, var = slow_paired_delong(a[keep, j], b[keep, j], y[keep, j])
        assert r.diff[j] == pytest.approx(diff, abs=1e-12)
        assert r.var[j] == pytest.approx(var, rel=1e-9)
    assert np.isnan(r.df).all()


def test_clustered_equals_slow_formula():
    rng = np.random.default_rng(1)
    a, b, y, g = two_models(rng, 40, 1.0, 0.5, prevalence=0.3)
    a, b = np.round(a, 1), np.round(np.log(b), 1)
    y = y.copy()
    y[rng.random(len(y)) < 0.1] = -1
    r = auc_difference(a, b, y, groups=g)
    keep = y >= 0
    diff, var = slow_paired_clustered(a[keep], b[keep], y[keep], g[keep])
    assert r.diff == pytest.approx(diff, abs=1e-12)
    assert r.var == pytest.approx(var, rel=1e-9)
    assert 1 <= r.df <= len(np.unique(g[keep]))


def test_against_a_constant_model_is_the_single_auc():
    """A model with one score for all: AUC 1/2 and no variance of its own, so the difference's
    variance and df are the other model's (the same code paths must agree)."""
    rng = np.random.default_rng(2)
    a, _, y, g = two_models(rng, 120, 1.0, 1.0, prevalence=0.3)
    one = auc_delong(a, y, groups=g)
    auc, var, m, k, df = one.auc, one.var, one.n_pos, one.n_neg, one.df
    r = auc_difference(a, np.zeros_like(a), y, groups=g)
    assert r.auc_a == auc and r.auc_b == 0.5 and r.diff == pytest.approx(auc - 0.5)
    assert r.var == pytest.approx(var, rel=1e-12) and r.df == pytest.approx(df, rel=1e-12)
    assert (r.n_pos, r.n_neg) == (m, k)
    # each model's own variance and df, from the same components, are auc_delong's
    assert (r.var_a, r.df_a) == (pytest.approx(var, rel=1e-12), pytest.approx(df, rel=1e-12))
    assert r.var_b == 0
    u = auc_difference(a, np.zeros_like(a), y)  # unclustered: DeLong's
    assert u.var_a == pytest.approx(auc_delong(a, y).var, rel=1e-9) and np.isnan(u.df_a)


def test_identical_models_give_no_test():
    rng = np.random.default_rng(3)
    a, _, y, g = two_models(rng, 60, 1.0, 1.0)
    r = auc_difference(a, a.copy(), y, groups=g)
    lo, hi, p, _ = difference_interval(r)
    assert r.diff == 0 and np.isnan(p) and np.isnan(lo)


def test_calibrated_on_nulls_with_frequent_visitors():
    """Two different models with the same true AUC, 400 studies of 300 patients with frequent
    visitors: the clustered test rejects 3-7% at 0.05 and its interval covers 0 in 93-97%; the
    test over stays, blind to the patients, rejects far more (measured 20%)."""
    rng = np.random.default_rng(4)
    n = 400
    p_clustered, p_stays, covered = [], [], 0
    for _ in range(n):
        a, b, y, g = two_models(rng, 300, 1.0, 1.0)
        r = auc_difference(a, b, y, groups=g)
        lo, hi, p, _ = difference_interval(r)  # as compare computes it
        p_clustered.append(p)
        covered += lo <= 0 <= hi
        r = auc_difference(a, b, y)
        p_stays.append(difference_test(r.diff, r.var)[2])
    p_clustered, p_stays = np.array(p_clustered), np.array(p_stays)
    assert 0.03 <= (p_clustered < 0.05).mean() <= 0.07
    assert 0.93 <= covered / n <= 0.97
    assert (p_stays < 0.05).mean() > 0.12
    assert stats.kstest(p_clustered, "uniform").pvalue > 0.01  # uniform, not only at 0.05


def test_detects_a_real_difference():
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(50):
        a, b, y, g = two_models(rng, 300, 1.5, 0.5)
        r = auc_difference(a, b, y, groups=g)
        hits += difference_interval(r)[2] < 0.05 and r.diff > 0
    assert hits >= 45


def test_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        auc_difference(np.zeros((4, 2)), np.zeros((4, 1)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        auc_difference(np.array([0.1, np.nan]), np.array([0.1, 0.2]), np.array([0, 1]))
