"""ROC AUC with DeLong variance for many phenotypes at once.

One sort per phenotype, phenotypes processed in cache-sized blocks; ties handled through tie
groups, so the AUC equals ``sklearn.metrics.roc_auc_score`` and the variance equals DeLong et al.
(1988) in the fast formulation of Sun & Xu (2014). Structural components are kept as exact
integers (twice their value) until the final division.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

BLOCK = 32  # phenotypes per block: keeps the working set in cache


def auc_delong(scores: np.ndarray, labels: np.ndarray):
    """AUC and DeLong variance for each column.

    Parameters
    ----------
    scores : array ``[n, p]`` (or ``[n]``), finite.
    labels : array ``[n, p]`` with 1 (positive), 0 (negative) and anything else (left out).

    Returns
    -------
    auc, var, n_pos, n_neg : arrays ``[p]``. ``auc`` and ``var`` are NaN where a column lacks
    positives or negatives; ``var`` is NaN where either side has a single member.
    """
    scores = np.asarray(scores)
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    labels = np.asarray(labels)
    squeeze = scores.ndim == 1
    if squeeze:
        scores, labels = scores[:, None], labels[:, None]
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    n_cols = scores.shape[1]
    out = np.full((4, n_cols), np.nan)
    for a in range(0, n_cols, BLOCK):
        b = min(a + BLOCK, n_cols)
        out[:, a:b] = _block(np.ascontiguousarray(scores[:, a:b].T), np.ascontiguousarray(labels[:, a:b].T))
    auc, var, m, k = out
    m, k = m.astype(np.int64), k.astype(np.int64)
    if squeeze:
        return auc[0], var[0], int(m[0]), int(k[0])
    return auc, var, m, k


def _block(s: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Rows are phenotypes. Returns ``[auc, var, n_pos, n_neg]`` per row."""
    p0, q0 = lab == 1, lab == 0
    s = np.where(p0 | q0, s, np.inf)  # left-out entries sort last and count as neither side
    order = np.argsort(s, axis=1)
    s = np.take_along_axis(s, order, axis=1)
    p = np.take_along_axis(p0, order, axis=1)
    q = np.take_along_axis(q0, order, axis=1)
    m = p.sum(axis=1).astype(np.int64)
    k = q.sum(axis=1).astype(np.int64)
    pos_before, pos_in, neg_before, neg_in = _before_and_within(s, p, q)
    w10 = np.where(p, 2 * neg_before + neg_in, 0).astype(np.float64)  # positives: x2 negatives below
    w01 = np.where(q, 2 * (m[:, None] - pos_before) - pos_in, 0).astype(np.float64)  # negatives
    mf, kf = m.astype(np.float64), k.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = w10.sum(axis=1) / (2.0 * mf * kf)
        var10 = ((w10 ** 2).sum(axis=1) / (4.0 * kf ** 2) - mf * auc ** 2) / (mf - 1)
        var01 = ((w01 ** 2).sum(axis=1) / (4.0 * mf ** 2) - kf * auc ** 2) / (kf - 1)
        var = np.maximum(var10, 0) / mf + np.maximum(var01, 0) / kf
    auc[(m == 0) | (k == 0)] = np.nan
    var[(m < 2) | (k < 2)] = np.nan
    return np.stack([auc, var, mf, kf])


def _before_and_within(s, p, q):
    """For rows sorted by score: positives (negatives) before each element's tie group and inside it."""
    cp = np.cumsum(p, axis=1, dtype=np.int32)
    cq = np.cumsum(q, axis=1, dtype=np.int32)
    first = np.ones(s.shape, dtype=bool)
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    if first[np.isfinite(s)].all():  # no ties among the scored entries
        return cp - p, p.astype(np.int32), cq - q, q.astype(np.int32)
    last = np.ones_like(first)
    last[:, :-1] = first[:, 1:]
    big = np.iinfo(np.int32).max
    res = []
    for c, mem in ((cp, p), (cq, q)):
        before = np.maximum.accumulate(np.where(first, c - mem, 0), axis=1)
        through = np.minimum.accumulate(np.where(last, c, big)[:, ::-1], axis=1)[:, ::-1]
        res += [before, through - before]
    return res


def auc_ci(auc, var, level: float = 0.95):
    """Normal-approximation interval ``auc +- z * sqrt(var)``, clipped to [0, 1]."""
    z = stats.norm.ppf(0.5 + level / 2)
    se = np.sqrt(var)
    return np.clip(auc - z * se, 0, 1), np.clip(auc + z * se, 0, 1)
