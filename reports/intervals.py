"""Intervals and tests of AUCs and of paired AUC differences, from the variances and degrees of
freedom of :mod:`phewas.base.auc`."""

from __future__ import annotations

import numpy as np
from scipy import stats


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

