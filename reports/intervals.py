"""Intervals and tests of AUCs and of paired AUC differences, from the variances of
:mod:`phewas.base.auc`.

:func:`auc_interval` and :func:`difference_interval` are the rules ``report`` and ``compare``
use, chosen by a calibration study over AUCs 0.6-0.99 and 20-200 case patients on populations
the project's simulator did not write (``bench/bench_auc_intervals.py``; docs/statistics.md has
the figures). The other functions are their parts and the candidates they were chosen from.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import owens_t


def auc_ci(auc, var, level: float = 0.95, df=None):
    """Interval on the logit scale, ``logit(auc) +- q * se / (auc (1 - auc))`` transformed back,
    so that it stays inside (0, 1). ``q`` is the normal quantile, or Student's t with ``df``
    degrees of freedom where ``df`` is given and finite (the clustered variance's effective
    number of clusters: with few of them the variance is itself uncertain). NaN where the
    variance is undefined or zero, or the AUC is 0 or 1: never a zero-width interval."""
    auc, var = np.asarray(auc, dtype=np.float64), np.asarray(var, dtype=np.float64)
    z = np.full(auc.shape, stats.norm.ppf(0.5 + level / 2))
    if df is not None:
        df = np.broadcast_to(np.asarray(df, dtype=np.float64), auc.shape)
        finite = np.isfinite(df) & (df > 0)
        z = np.where(finite, stats.t.ppf(0.5 + level / 2, np.where(finite, df, 1.0)), z)
    ok = np.isfinite(auc) & np.isfinite(var) & (var > 0) & (auc > 0) & (auc < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.log(auc / (1 - auc))
        half = z * np.sqrt(var) / (auc * (1 - auc))
        lo, hi = 1 / (1 + np.exp(-(centre - half))), 1 / (1 + np.exp(-(centre + half)))
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)


def auc_interval(r, level: float = 0.95):
    """The interval ``report`` gives one AUC, from :func:`~phewas.base.auc.auc_delong`'s record
    ``r``: the logit-scale interval (:func:`auc_ci`) with

    - the variance floored at :func:`binormal_var` at the estimate with the stays as units: the
      clustered variance rests on few case patients and is often far too small near an AUC of 1,
      where one or two patients' components carry it;
    - Student's t quantile on Satterthwaite's degrees of freedom of the positives' and the
      negatives' parts of the variance, each part estimated from its own patients, counted by
      Kish's effective number from their stays (:func:`satterthwaite_df`; at least the smaller
      effective count less one, so it cannot collapse to 1 when one patient's components
      dominate, as the effective number of the contributions did).

    Where the AUC is 0 or 1 (every case above every control) the logit interval has no width; there
    the score interval (:func:`auc_score_ci`) with the case and control patients as units. NaN where
    the AUC is undefined or a side has a single patient. Returns ``(low, high, df)``.
    """
    auc = np.asarray(r.auc, np.float64)
    df = satterthwaite_df(r.var_pos, r.var_neg, r.pos_effective, r.neg_effective)
    var = floored_var(r.var, auc, r.n_pos, r.n_neg)
    lo, hi = auc_ci(auc, var, level, df=df)
    edge = np.isfinite(var) & ((auc == 0) | (auc == 1))
    if np.any(edge):
        slo, shi = auc_score_ci(auc, r.pos_clusters, r.neg_clusters, level)
        lo, hi = np.where(edge, slo, lo), np.where(edge, shi, hi)
    return lo, hi, df


def difference_interval(d, level: float = 0.95):
    """The interval and p-value ``compare`` gives a paired difference, from
    :func:`~phewas.base.auc.auc_difference`'s record ``d``: ``diff +- t se`` with the difference's
    variance scaled up by as much as :func:`auc_interval`'s floor raises the two AUCs' own
    variances together (``(floored var_a + floored var_b) / (var_a + var_b)``, at least 1: near an
    AUC of 1 the clustered difference variance is too small for the same reason), and Student's
    t on Satterthwaite's degrees of freedom of the difference's positives' and negatives' parts
    (with the patients counted as by :func:`auc_interval`).
    NaN where the variance is zero (two models that rank every pair alike) or undefined.
    Returns ``(low, high, p, df)``."""
    df = satterthwaite_df(d.var_pos, d.var_neg, d.pos_effective, d.neg_effective)
    lo, hi, p = difference_test(d.diff, scaled_difference_var(d), df, level)
    return lo, hi, p, df


def floored_var(var, auc, n_pos, n_neg):
    """``var`` floored at :func:`binormal_var` at ``auc`` with ``n_pos`` and ``n_neg`` units (NaN
    stays NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.maximum(np.asarray(var, np.float64), binormal_var(auc, n_pos, n_neg))


def scaled_difference_var(d):
    """The paired difference's variance scaled up by as much as :func:`floored_var` raises the two
    AUCs' own variances together (at least 1; 1 where both are zero)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        floored = floored_var(d.var_a, d.auc_a, d.n_pos, d.n_neg) + floored_var(d.var_b, d.auc_b, d.n_pos, d.n_neg)
        scale = np.where(d.var_a + d.var_b > 0, floored / (d.var_a + d.var_b), 1.0)
    return np.asarray(d.var, np.float64) * np.maximum(scale, 1.0)


def difference_test(diff, var, df=None, level: float = 0.95):
    """Interval and two-sided p-value of AUC differences: ``diff +- q se`` (clipped to [-1, 1])
    and ``P(|T| >= |diff| / se)``, with ``T`` Student's t on ``df`` degrees of freedom where
    ``df`` is given and finite, else normal. NaN where the variance is undefined or zero (two
    identical models). Returns ``(low, high, p)``."""
    diff, var = np.asarray(diff, dtype=np.float64), np.asarray(var, dtype=np.float64)
    dist = np.full(diff.shape, np.inf)  # t with infinite df: the normal
    if df is not None:
        df = np.broadcast_to(np.asarray(df, dtype=np.float64), diff.shape)
        dist = np.where(np.isfinite(df) & (df > 0), df, np.inf)
    ok = np.isfinite(diff) & np.isfinite(var) & (var > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(var)
        q = stats.t.ppf(0.5 + level / 2, dist)
        p = 2 * stats.t.sf(np.abs(diff) / se, dist)
        lo, hi = np.clip(diff - q * se, -1, 1), np.clip(diff + q * se, -1, 1)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), np.where(ok, p, np.nan)


def hanley_mcneil_var(theta, m, n):
    """The AUC's variance as a function of the AUC itself (Hanley & McNeil 1982), with ``m``
    positives and ``n`` negatives: ``theta (1 - theta) [1 + (m - 1)(1 - theta) / (2 - theta)
    + (n - 1) theta / (1 + theta)] / (m n)``."""
    theta = np.asarray(theta, dtype=np.float64)
    return theta * (1 - theta) * (1 + (m - 1) * (1 - theta) / (2 - theta) + (n - 1) * theta / (1 + theta)) / (m * n)


def auc_score_ci(auc, m, n, level: float = 0.95, iterations: int = 60, var=None, df=None):
    """Score interval of the AUC: every ``theta`` with ``(auc - theta)^2 <= q^2 V(theta)``, ``V``
    :func:`hanley_mcneil_var` with ``m`` and ``n`` positive and negative units (Newcombe 2006's
    approach: the variance at each candidate AUC, not at the estimate, so that an AUC near or at 1
    keeps an interval of some width). Vectorised bisection. NaN where ``m`` or ``n`` is below 1
    or the AUC undefined.

    With ``var`` (an estimated variance at the AUC), ``V`` is that variance carried to each
    ``theta`` by Hanley and McNeil's shape, ``var * V_HM(theta) / V_HM(auc)``: the data set the
    level, the model how the variance grows as the AUC moves away from 1. With ``df``, ``q`` is
    Student's t quantile, else the normal one."""
    auc = np.asarray(auc, dtype=np.float64)
    m, n = np.broadcast_to(np.asarray(m, np.float64), auc.shape), np.broadcast_to(np.asarray(n, np.float64), auc.shape)
    q = np.full(auc.shape, stats.norm.ppf(0.5 + level / 2))
    if df is not None:
        df = np.broadcast_to(np.asarray(df, np.float64), auc.shape)
        q = np.where(np.isfinite(df) & (df > 0), stats.t.ppf(0.5 + level / 2, np.where(df > 0, df, 1.0)), q)
    ok = np.isfinite(auc) & (m >= 1) & (n >= 1)
    a = np.where(ok, auc, 0.5)
    mm, nn = np.where(ok, m, 1.0), np.where(ok, n, 1.0)
    scale = np.ones_like(a)
    if var is not None:
        var = np.broadcast_to(np.asarray(var, np.float64), auc.shape)
        at = hanley_mcneil_var(np.clip(a, 1e-9, 1 - 1e-9), mm, nn)
        ok &= np.isfinite(var) & (var > 0)
        scale = np.where(ok, var / at, 1.0)

    def outside(theta):  # the score test rejects theta
        return (a - theta) ** 2 > q ** 2 * scale * hanley_mcneil_var(theta, mm, nn)

    lo_a, lo_b = np.zeros_like(a), a.copy()  # the lower bound lies in (0, auc]
    hi_a, hi_b = a.copy(), np.ones_like(a)  # the upper bound in [auc, 1)
    for _ in range(iterations):
        mid = (lo_a + lo_b) / 2
        rejected = outside(mid)
        lo_a, lo_b = np.where(rejected, mid, lo_a), np.where(rejected, lo_b, mid)
        mid = (hi_a + hi_b) / 2
        rejected = outside(mid)
        hi_a, hi_b = np.where(rejected, hi_a, mid), np.where(rejected, mid, hi_b)
    return np.where(ok, lo_b, np.nan), np.where(ok, hi_a, np.nan)


def binormal_var(theta, m, n):
    """The AUC's variance as a function of the AUC itself under the equal-variance binormal model,
    with ``m`` positives and ``n`` negatives, all independent: ``[theta (1 - theta) + (m + n - 2)
    (P - theta^2)] / (m n)``, ``P`` the chance that two positives both outscore one negative (and,
    by the model's symmetry, that one positive outscores two negatives), ``Phi_2(a, a; 1/2)`` with
    ``a = Phi^-1(theta)``, computed with Owen's T function."""
    theta = np.clip(np.asarray(theta, np.float64), 1e-12, 1 - 1e-12)
    a = stats.norm.ppf(theta)
    p2 = theta - 2 * owens_t(a, 1 / np.sqrt(3))  # Phi_2(a, a; 1/2)
    return (theta * (1 - theta) + (m + n - 2) * (p2 - theta ** 2)) / (m * n)


def satterthwaite_df(var_pos, var_neg, pos_clusters, neg_clusters):
    """Welch-Satterthwaite degrees of freedom of a variance that is the sum of the positives' part
    (estimated from ``pos_clusters`` units) and the negatives' part (``neg_clusters``)."""
    var_pos, var_neg = np.asarray(var_pos, np.float64), np.asarray(var_neg, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (var_pos + var_neg) ** 2 / (var_pos ** 2 / (pos_clusters - 1) + var_neg ** 2 / (neg_clusters - 1))
