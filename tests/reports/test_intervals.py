"""The intervals ``report`` and ``compare`` give: their parts against slow, obvious computations,
their behaviour at the edges, and a small calibration study at a high AUC with few case patients
on populations drawn by ``tests/populations.py`` (not the project's simulator;
``bench/bench_auc_intervals.py`` runs the whole grid)."""

import numpy as np
import pytest
from populations import delta_for, draw, true_auc
from scipy import stats
from sklearn.metrics import roc_auc_score

from phewas.base.auc import auc_delong, auc_difference
from reports.intervals import (
    auc_ci,
    auc_interval,
    auc_score_ci,
    binormal_var,
    difference_interval,
    hanley_mcneil_var,
    satterthwaite_df,
)


@pytest.mark.parametrize("theta, m, n", [(0.75, 30, 200), (0.95, 20, 400), (0.6, 80, 80)])
def test_binormal_variance_equals_a_monte_carlo(theta, m, n):
    rng = np.random.default_rng(0)
    delta = np.sqrt(2) * stats.norm.ppf(theta)
    aucs = [roc_auc_score(np.r_[np.ones(m), np.zeros(n)], np.r_[rng.normal(delta, 1, m), rng.normal(0, 1, n)])
            for _ in range(2500)]
    assert binormal_var(theta, m, n) == pytest.approx(np.var(aucs), rel=0.1)  # 2,500 draws: +-6% at 2 SD


def test_satterthwaite_df_is_welchs_and_at_least_the_smaller_side():
    rng = np.random.default_rng(1)
    for _ in range(20):
        vp, vn = rng.exponential(size=2)
        i, j = rng.integers(3, 300, size=2)
        expected = (vp + vn) ** 2 / (vp ** 2 / (i - 1) + vn ** 2 / (j - 1))
        df = satterthwaite_df(vp, vn, i, j)
        assert df == pytest.approx(expected) and min(i, j) - 1 <= df + 1e-9 <= i + j - 2 + 1e-9


def test_score_interval_bounds_solve_the_score_equation():
    q = stats.norm.ppf(0.975)
    lo, hi = auc_score_ci(np.array([0.8, 1.0]), 25, 300)
    for theta in (lo[0], hi[0], lo[1]):
        a = 0.8 if theta != lo[1] else 1.0
        assert (a - theta) ** 2 == pytest.approx(q ** 2 * hanley_mcneil_var(theta, 25, 300), rel=1e-6)
    assert hi[1] == pytest.approx(1.0)


def test_an_auc_of_one_gets_an_interval_of_some_width():
    rng = np.random.default_rng(2)
    patient = np.repeat(np.arange(300), 2)
    label = (patient < 20).astype(int)  # 20 case patients, two stays each
    score = label * 10 + rng.normal(size=len(patient))
    r = auc_delong(score, label, groups=patient)
    assert r.auc == 1.0 and r.var == 0.0
    lo, hi, _ = auc_interval(r)
    assert 0.8 < lo < 0.99 and hi == pytest.approx(1.0)
    lo0, hi0, _ = auc_interval(auc_delong(-score, label, groups=patient))  # and an AUC of 0
    assert lo0 == pytest.approx(0.0) and 0.001 < hi0 < 0.2


def test_undefined_where_one_side_has_a_single_patient():
    s = np.array([0.9, 0.8, 0.1, 0.2, 0.3])
    y = np.array([1, 1, 0, 0, 0])
    lo, hi, _ = auc_interval(auc_delong(s, y, groups=np.array([0, 0, 1, 2, 3])))
    assert np.isnan(lo) and np.isnan(hi)


def test_difference_of_identical_models_is_undefined_not_significant():
    rng = np.random.default_rng(3)
    s, y = rng.normal(size=400), (rng.random(400) < 0.2).astype(int)
    lo, hi, p, _ = difference_interval(auc_difference(s, s, y, groups=np.arange(400) // 2))
    assert np.isnan(lo) and np.isnan(hi) and np.isnan(p)


def study(auc: float, cases: int, replicates: int, seed: int):
    """Each rule's intervals over replicate populations; the truth and the sampling spread."""
    rng = np.random.default_rng(seed)
    delta = delta_for(auc, 1.0, False)
    truth = true_auc(delta, 1.0, False)
    ours, kish, estimates = [], [], []
    for _ in range(replicates):
        pop = draw(rng, cases, (delta,))
        r = auc_delong(pop.scores[0], pop.label, groups=pop.patient)
        estimates.append(r.auc)
        ours.append(auc_interval(r)[:2])
        kish.append(auc_ci(r.auc, r.var, df=r.df))  # the effective-number-of-patients rule it replaced
    spread = 2 * 1.96 * np.std(estimates, ddof=1)
    return truth, spread, np.array(ours), np.array(kish)


@pytest.mark.parametrize("auc", [0.75, 0.97])
def test_calibrated_at_high_auc_with_few_case_patients(auc):
    """25 case patients among 1,000, returning patients: the interval covers about 95% and is never
    far wider than the sampling spread (the rule it replaced reached 9x at its 95th percentile)."""
    truth, spread, ours, kish = study(auc, 25, 240, seed=int(auc * 100))
    width = ours[:, 1] - ours[:, 0]
    assert np.isfinite(ours).all() and (width > 0).all()
    coverage = np.mean((ours[:, 0] <= truth) & (truth <= ours[:, 1]))
    assert 0.91 <= coverage <= 0.99, coverage  # 240 studies: about +-2.8% at 2 SD around 95%
    assert np.median(width) / spread <= 1.3
    assert np.quantile(width, 0.95) / spread <= 2.2
    if auc > 0.9:  # what the new rule fixes
        kish_width = kish[:, 1] - kish[:, 0]
        assert np.nanquantile(kish_width, 0.95) / spread > 1.5 * np.quantile(width, 0.95) / spread
