"""Patient-clustered AUC variance (Obuchowski 1997), its effective degrees of freedom and the
logit-scale interval, checked against DeLong (one stay per patient), a slow per-pair
implementation of Obuchowski's formula, a patient-level bootstrap, and coverage on simulated
returning patients and frequent visitors (a known true AUC, not the project's simulator)."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from phewas.base.auc import auc_delong
from reports.intervals import auc_ci, auc_interval


def slow_obuchowski(score, y, groups):
    """Obuchowski's formula, written out with a loop over every positive-negative pair."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    M, N = len(pos), len(neg)
    psi = lambda a, b: 1.0 if a > b else 0.5 if a == b else 0.0  # noqa: E731
    v10 = {i: sum(psi(score[i], score[j]) for j in neg) / N for i in pos}
    v01 = {j: sum(psi(score[i], score[j]) for i in pos) / M for j in neg}
    auc = sum(v10.values()) / M
    clusters = sorted(set(groups[pos]) | set(groups[neg]))
    d10, d01 = [], []
    for c in clusters:
        ps = [i for i in pos if groups[i] == c]
        ns = [j for j in neg if groups[j] == c]
        d10.append(sum(v10[i] for i in ps) - len(ps) * auc)
        d01.append(sum(v01[j] for j in ns) - len(ns) * auc)
    d10, d01 = np.array(d10), np.array(d01)
    i10 = len({groups[i] for i in pos})
    i01 = len({groups[j] for j in neg})
    ia = len(clusters)
    s10 = i10 / ((i10 - 1) * M) * (d10 ** 2).sum()
    s01 = i01 / ((i01 - 1) * N) * (d01 ** 2).sum()
    s11 = ia / (ia - 1) * (d10 * d01).sum()
    return auc, s10 / M + s01 / N + 2 * s11 / (M * N)


def slow_effective_df(score, y, groups):
    """Each cluster's contribution to Obuchowski's variance, then (sum)^2 / sum of squares."""
    auc, var = slow_obuchowski(score, y, groups)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    M, N = len(pos), len(neg)
    i10, i01 = len(set(groups[pos])), len(set(groups[neg]))
    ia = len(set(groups[pos]) | set(groups[neg]))
    parts = []
    for c in sorted(set(groups[pos]) | set(groups[neg])):
        d10 = sum(np.mean(score[i] > score[neg]) + 0.5 * np.mean(score[i] == score[neg]) - auc
                  for i in pos if groups[i] == c)
        d01 = sum(np.mean(score[pos] > score[j]) + 0.5 * np.mean(score[pos] == score[j]) - auc
                  for j in neg if groups[j] == c)
        parts.append(i10 / ((i10 - 1) * M * M) * d10 ** 2 + i01 / ((i01 - 1) * N * N) * d01 ** 2
                     + 2 * ia / ((ia - 1) * M * N) * d10 * d01)
    parts = np.array(parts)
    assert parts.sum() == pytest.approx(var, rel=1e-9)  # the contributions add up to the variance
    return parts.sum() ** 2 / (parts ** 2).sum()


def frequent_visitors(rng, n_patients, effect, rho=1.0, prevalence=0.15):
    """As :func:`returning_patients`, but 15% of patients return up to 20 times (6 on average)."""
    sizes = np.where(rng.random(n_patients) < 0.15, np.minimum(rng.geometric(0.12, n_patients), 20),
                     rng.geometric(0.6, n_patients))
    g = np.repeat(np.arange(n_patients), sizes)
    y_pat = (rng.random(n_patients) < prevalence).astype(int)
    u = rng.normal(size=n_patients) * rho
    y = y_pat[g]
    s = u[g] + effect * y + rng.normal(size=len(g))
    return s, y, g, stats.norm.cdf(effect / np.sqrt(2 * (rho ** 2 + 1)))


def test_effective_df_equals_slow_formula_and_is_at_most_the_clusters():
    rng = np.random.default_rng(5)
    for _ in range(4):
        s, y, g, _ = frequent_visitors(rng, 40, 0.8, prevalence=0.3)
        s = np.round(s, 1)  # ties
        df = auc_delong(s, y, groups=g).df
        assert df == pytest.approx(slow_effective_df(s, y, g), rel=1e-9)
        assert 1 <= df <= len(np.unique(g))
    assert np.isnan(auc_delong(s, y).df)  # no clusters, no df


def test_coverage_with_frequent_visitors():
    """Few positive patients (about 22), some with up to 20 stays: the clustered variance rests on
    few effective clusters. The normal interval undercovers; the report's interval (a t quantile
    on Satterthwaite's df over effective patient counts, a floored variance) holds about 93%."""
    rng = np.random.default_rng(11)
    hit_normal = hit_report = 0
    n = 400
    for _ in range(n):
        s, y, g, true_auc = frequent_visitors(rng, 150, 1.2)
        r = auc_delong(s, y, groups=g)
        lo, hi = auc_ci(r.auc, r.var)
        hit_normal += lo <= true_auc <= hi
        lo, hi, _ = auc_interval(r)
        hit_report += lo <= true_auc <= hi
    assert hit_report / n >= 0.92  # measured 93.0%; 400 studies: +-2.5% at 2 SD
    assert hit_normal / n < 0.925  # what the degrees of freedom fix


def returning_patients(rng, n_patients, stays_per_patient, effect, rho=1.0, prevalence=0.3):
    """Chronic labels, constant per patient; scores share a patient effect (rho)."""
    g = np.repeat(np.arange(n_patients), stays_per_patient)
    y_pat = (rng.random(n_patients) < prevalence).astype(int)
    u = rng.normal(size=n_patients) * rho
    y = y_pat[g]
    s = u[g] + effect * y + rng.normal(size=len(g))
    true_auc = stats.norm.cdf(effect / np.sqrt(2 * (rho ** 2 + 1)))
    return s, y, g, true_auc


def test_one_stay_per_patient_equals_delong():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=(300, 5)), 1)  # ties
    y = (rng.random((300, 5)) < 0.3).astype(int)
    y[rng.random((300, 5)) < 0.1] = -1
    r0, r1 = auc_delong(s, y), auc_delong(s, y, groups=np.arange(300))
    a0, v0, a1, v1 = r0.auc, r0.var, r1.auc, r1.var
    np.testing.assert_allclose(a1, a0)
    np.testing.assert_allclose(v1, v0, rtol=1e-10)


def test_matches_slow_formula_with_ties_and_left_out_stays():
    rng = np.random.default_rng(1)
    s, y, g, _ = returning_patients(rng, 40, 3, 0.8)
    s = np.round(s, 1)
    y = y.copy()
    y[rng.random(len(y)) < 0.1] = -1  # excluded stays
    y[:3] = [1, 0, 1]  # one patient with a positive and a negative stay
    r = auc_delong(s, y, groups=g)
    a, v = r.auc, r.var
    keep = y >= 0
    a_slow, v_slow = slow_obuchowski(s[keep], y[keep], g[keep])
    assert a == pytest.approx(roc_auc_score(y[keep], s[keep]))
    assert a == pytest.approx(a_slow) and v == pytest.approx(v_slow, rel=1e-10)


def test_close_to_a_patient_bootstrap():
    rng = np.random.default_rng(2)
    s, y, g, _ = returning_patients(rng, 150, 2, 0.8)
    v = auc_delong(s, y, groups=g).var
    boot = []
    patients = np.unique(g)
    rows = [np.flatnonzero(g == p) for p in patients]
    for _ in range(1500):
        pick = np.concatenate([rows[i] for i in rng.integers(0, len(patients), len(patients))])
        if 0 < y[pick].sum() < len(pick):
            boot.append(roc_auc_score(y[pick], s[pick]))
    assert v == pytest.approx(np.var(boot), rel=0.15)
    v_naive = auc_delong(s, y).var
    assert v > 1.3 * v_naive  # DeLong over stays understates it here


def test_coverage_with_returning_patients():
    """95% intervals over 400 simulated studies, 2 stays per patient: clustered >= 93%."""
    rng = np.random.default_rng(3)
    hit_clustered = hit_naive = 0
    n = 400
    for _ in range(n):
        s, y, g, true_auc = returning_patients(rng, 120, 2, 0.9)
        r = auc_delong(s, y, groups=g)
        lo, hi, _ = auc_interval(r)  # as the report computes it
        hit_clustered += lo <= true_auc <= hi
        r = auc_delong(s, y)
        a, v = r.auc, r.var
        lo, hi = auc_ci(a, v)
        hit_naive += lo <= true_auc <= hi
    assert 0.93 <= hit_clustered / n <= 0.98  # not bought with needlessly wide intervals
    assert hit_naive / n < 0.90  # what the clustering fixes


def test_interval_stays_inside_and_is_nan_when_undefined():
    lo, hi = auc_ci(np.array([0.99, 0.5, 1.0, 0.7, np.nan]), np.array([0.001, 0.01, 0.0, np.nan, 0.01]))
    assert 0 < lo[0] < 0.99 < hi[0] < 1 and lo[1] < 0.5 < hi[1]
    assert np.isnan(lo[2:]).all() and np.isnan(hi[2:]).all()
    # a single positive patient: the clustered variance is undefined
    s = np.array([0.9, 0.8, 0.1, 0.2, 0.3])
    y = np.array([1, 1, 0, 0, 0])
    v = auc_delong(s, y, groups=np.array([0, 0, 1, 2, 3])).var
    assert np.isnan(v)
