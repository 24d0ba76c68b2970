"""ROC AUC with DeLong variance for many phenotypes at once: the one AUC routine of the toolkit
(fine-tuning's validation, ``report``, ``compare``).

One sort per phenotype, phenotypes processed in cache-sized blocks; ties handled through tie
groups, so the AUC equals ``sklearn.metrics.roc_auc_score`` and the variance equals DeLong et al.
(1988) in the fast formulation of Sun & Xu (2014). Structural components are kept as exact
integers (twice their value) until the final division.

Patients return to the emergency department, and their stays are not independent. Given the
stays' patients (``groups``), the variance is Obuchowski's (1997) clustered form of DeLong's:
the structural components are summed per patient, and the covariance between a patient's
positive and negative stays enters; with one stay per patient it equals DeLong's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

BLOCK = 32  # phenotypes per block: keeps the working set in cache


@dataclass(frozen=True, kw_only=True)
class ClusterParts:
    """What the intervals of :mod:`reports.intervals` weigh a variance with: ``var_pos`` and
    ``var_neg``, the positives' and the negatives' parts of it (the rest is their covariance);
    ``pos_clusters`` and ``neg_clusters``, the clusters with a positive and with a negative (the
    stays themselves without clusters); ``pos_effective`` and ``neg_effective``, Kish's effective
    numbers of them from their stay counts, ``(sum m_i)^2 / sum m_i^2``."""

    var_pos: np.ndarray = None
    var_neg: np.ndarray = None
    pos_clusters: np.ndarray = None
    neg_clusters: np.ndarray = None
    pos_effective: np.ndarray = None
    neg_effective: np.ndarray = None


@dataclass(frozen=True)
class AUCs(ClusterParts):
    """:func:`auc_delong`'s answer: arrays ``[p]`` (scalars for 1-D input).

    ``auc`` and ``var`` are NaN where a column lacks positives or negatives; ``var`` is NaN where
    either side has a single member (a single patient, when clustered). ``df``: with clusters,
    the variance's degrees of freedom, the effective number of clusters; NaN without. And
    :class:`ClusterParts`' fields for ``var``.
    """

    auc: np.ndarray
    var: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray
    df: np.ndarray


@dataclass(frozen=True)
class AUCDifference(ClusterParts):
    """:func:`auc_difference`'s answer: arrays ``[p]`` (scalars for 1-D input): the two AUCs,
    ``diff = auc_a - auc_b`` with its variance and df, the counts, and each model's own variance
    and df (as :func:`auc_delong` gives them). Every df is NaN without clusters.
    :class:`ClusterParts`' fields are the difference's; ``var_pos_a`` and the like each model's.
    :meth:`single` gives one model's :class:`AUCs`."""

    auc_a: np.ndarray
    auc_b: np.ndarray
    diff: np.ndarray
    var: np.ndarray
    df: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray
    var_a: np.ndarray
    df_a: np.ndarray
    var_b: np.ndarray
    df_b: np.ndarray
    var_pos_a: np.ndarray = None
    var_neg_a: np.ndarray = None
    var_pos_b: np.ndarray = None
    var_neg_b: np.ndarray = None

    def single(self, key: str) -> AUCs:
        """Model ``key``'s (``"a"`` or ``"b"``) own AUC record, as :func:`auc_delong` gives it."""
        own = {f: getattr(self, f"{f}_{key}") for f in ("auc", "var", "df", "var_pos", "var_neg")}
        return AUCs(n_pos=self.n_pos, n_neg=self.n_neg, pos_clusters=self.pos_clusters,
                    neg_clusters=self.neg_clusters, pos_effective=self.pos_effective,
                    neg_effective=self.neg_effective, **own)


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """The AUC of one score, alone (no variance): the Mann-Whitney statistic from average ranks,
    ties counted as half, as :func:`auc_delong` and ``sklearn.metrics.roc_auc_score`` compute it;
    NaN without both classes."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, bool)
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, np.float64))
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_delong(scores: np.ndarray, labels: np.ndarray, groups=None) -> AUCs:
    """AUC and DeLong variance for each column.

    Parameters
    ----------
    scores : array ``[n, p]`` (or ``[n]``), finite.
    labels : array ``[n, p]`` with 1 (positive), 0 (negative) and anything else (left out).
    groups : array ``[n]``, optional
        Each row's cluster (patient). Given, ``var`` is Obuchowski's clustered variance and
        ``df`` the effective number of clusters ``(sum_i c_i)^2 / sum_i c_i^2`` over the
        clusters' contributions ``c_i`` to ``var`` (Kish's effective sample size).

    Returns
    -------
    AUCs
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
    G = None
    if groups is not None:
        g = np.unique(np.asarray(groups), return_inverse=True)[1]
        if len(g) != scores.shape[0]:
            raise ValueError(f"groups has {len(g)} entries for {scores.shape[0]} rows")
        G = sparse.csr_matrix((np.ones(len(g)), (g, np.arange(len(g)))), shape=(g.max() + 1, len(g)))
    out = np.full((len(FIELDS), n_cols), np.nan)
    for a in range(0, n_cols, BLOCK):
        b = min(a + BLOCK, n_cols)
        out[:, a:b] = _block(np.ascontiguousarray(scores[:, a:b].T), np.ascontiguousarray(labels[:, a:b].T), G)
    fields = dict(zip(FIELDS, out))
    for name in ("n_pos", "n_neg", "pos_clusters", "neg_clusters"):
        fields[name] = fields[name].astype(np.int64)
    if squeeze:
        fields = {k: (int(v[0]) if v.dtype == np.int64 else v[0]) for k, v in fields.items()}
    return AUCs(**fields)


FIELDS = ("auc", "var", "n_pos", "n_neg", "df", "var_pos", "var_neg", "pos_clusters", "neg_clusters",
          "pos_effective", "neg_effective")  # AUCs' fields, the rows of _block's answer


def _block(s: np.ndarray, lab: np.ndarray, G=None) -> np.ndarray:
    """Rows are phenotypes. Returns :data:`FIELDS` per row; ``G`` (clusters x stays, 0/1) switches
    to the clustered variance and its degrees of freedom (else NaN)."""
    p, q = lab == 1, lab == 0
    m = p.sum(axis=1).astype(np.int64)
    k = q.sum(axis=1).astype(np.int64)
    auc, w10, w01 = _components(s, p, q, m, k)
    mf, kf = m.astype(np.float64), k.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        var10 = ((w10 ** 2).sum(axis=1) / (4.0 * kf ** 2) - mf * auc ** 2) / (mf - 1)
        var01 = ((w01 ** 2).sum(axis=1) / (4.0 * mf ** 2) - kf * auc ** 2) / (kf - 1)
        var_pos, var_neg = np.maximum(var10, 0) / mf, np.maximum(var01, 0) / kf
        var = var_pos + var_neg
    undefined = (m < 2) | (k < 2)
    var[undefined] = var_pos[undefined] = var_neg[undefined] = np.nan
    df = np.full_like(auc, np.nan)
    clusters, effective = (mf, kf), (mf, kf)  # each stay its own cluster
    if G is not None:
        mi, ni = _per_cluster(G, p), _per_cluster(G, q)
        var, df, var_pos, var_neg = _sum_contributions(*_centred(G, w10, w01, mi, ni, auc, mf, kf), _counts(mi, ni),
                                                       mf, kf, auc, parts=True)
        clusters = ((mi > 0).sum(0).astype(np.float64), (ni > 0).sum(0).astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            effective = (mf ** 2 / (mi ** 2).sum(0), kf ** 2 / (ni ** 2).sum(0))
    return np.stack([auc, var, mf, kf, df, var_pos, var_neg, *clusters, *effective])


def _components(s, p, q, m, k):
    """AUC and twice each stay's structural component, in the stays' order (rows are phenotypes):
    ``w10`` of a positive, twice the negatives it outscores plus the negatives it ties; ``w01`` of
    a negative, likewise for the positives above it; 0 elsewhere. Exact integers held as floats
    (their sums are exact whatever the order) until the final division. ``m``, ``k``: positives
    and negatives per row (integers)."""
    s = np.where(p | q, s, np.inf)  # left-out entries sort last and count as neither side
    order = np.argsort(s, axis=1)
    ss = np.take_along_axis(s, order, axis=1)
    ps, qs = np.take_along_axis(p, order, axis=1), np.take_along_axis(q, order, axis=1)
    pos_before, pos_in, neg_before, neg_in = _before_and_within(ss, ps, qs)
    w10 = np.where(ps, 2 * neg_before + neg_in, 0).astype(np.float64)
    w01 = np.where(qs, 2 * (m[:, None] - pos_before) - pos_in, 0).astype(np.float64)
    inv = np.argsort(order, axis=1)  # back to the stays' order, which clusters' columns follow
    w10, w01 = np.take_along_axis(w10, inv, axis=1), np.take_along_axis(w01, inv, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = w10.sum(axis=1) / (2.0 * m * k)
    auc[(m == 0) | (k == 0)] = np.nan
    return auc, w10, w01


def _per_cluster(G, mask):
    """Clusters x phenotypes: how many of each cluster's stays ``mask`` marks."""
    return np.asarray(G @ mask.T.astype(np.float64))


def _counts(mi, ni):
    """The clusters with a positive, with a negative, with either."""
    return (mi > 0).sum(0), (ni > 0).sum(0), ((mi + ni) > 0).sum(0)


def _centred(G, w10, w01, mi, ni, auc, m, k):
    """Obuchowski (1997): with V10 (V01) the structural component of each positive (negative),
    summed per cluster i over its m_i positives (n_i negatives), and I10 (I01, I) the clusters
    with a positive (a negative, any),

    S10 = I10 / ((I10 - 1) M) sum_i (V10_i - m_i A)^2, S01 likewise,
    S11 = I / (I - 1) sum_i (V10_i - m_i A)(V01_i - n_i A),
    var = S10 / M + S01 / N + 2 S11 / (M N),

    a sum over clusters of contributions c_i (:func:`_sum_contributions`). Returns the centred
    sums ``(V10_i - m_i A, V01_i - n_i A)``, clusters x phenotypes.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        v10 = np.nan_to_num(w10 / (2.0 * k[:, None]))
        v01 = np.nan_to_num(w01 / (2.0 * m[:, None]))
    return np.asarray(G @ v10.T) - mi * auc[None, :], np.asarray(G @ v01.T) - ni * auc[None, :]


def _sum_contributions(d10, d01, counts, m, k, auc, parts: bool = False):
    """Obuchowski's variance from the clusters' centred components (clusters x phenotypes), as the
    sum of the clusters' contributions ``c_i``; ``counts``: the clusters with a positive, with a
    negative, with either. Returns ``(var, df)``: ``(sum c_i)^2 / sum c_i^2`` is the variance's
    degrees of freedom (the effective number of clusters: small when a few patients carry many
    of the stays). With ``parts`` also the positives' and the negatives' parts of the variance
    (the rest is their covariance)."""
    i10, i01, i_all = counts
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = i10 / ((i10 - 1) * m * m) * d10 ** 2
        neg = i01 / ((i01 - 1) * k * k) * d01 ** 2
        c = pos + neg + 2 * i_all / ((i_all - 1) * m * k) * d10 * d01  # clusters x phenotypes
        var = c.sum(0)
        df = var ** 2 / (c ** 2).sum(0)
        var_pos, var_neg = pos.sum(0), neg.sum(0)
    undefined = (i10 < 2) | (i01 < 2) | ~np.isfinite(auc)
    for a in (var, df, var_pos, var_neg):
        a[undefined] = np.nan
    return (var, df, var_pos, var_neg) if parts else (var, df)


def auc_difference(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray, groups=None) -> AUCDifference:
    """Paired difference of two models' AUCs on the same stays, ``auc_a - auc_b``, per column.

    The two AUCs are correlated (same positives, same negatives, often similar scores); the
    difference's structural components are the differences of the models' components, so its
    variance is DeLong's (1988) paired variance, or with ``groups`` Obuchowski's (1997) clustered
    form of it, computed as :func:`auc_delong` computes one AUC's: per cluster, summed. Its
    degrees of freedom are the effective number of clusters, as for one AUC.

    Parameters
    ----------
    scores_a, scores_b : arrays ``[n, p]`` (or ``[n]``), finite.
    labels : array ``[n, p]`` with 1 (positive), 0 (negative) and anything else (left out).
    groups : array ``[n]``, optional. Each row's cluster (patient).

    Returns
    -------
    AUCDifference
    """
    a, b, labels = np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64), np.asarray(labels)
    squeeze = a.ndim == 1
    if squeeze:
        a, b, labels = a[:, None], b[:, None], labels[:, None]
    if a.shape != labels.shape or b.shape != labels.shape:
        raise ValueError(f"scores {a.shape}, {b.shape} and labels {labels.shape} differ in shape")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores must be finite")
    n = labels.shape[0]
    g = (np.arange(n) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1])
    if len(g) != n:
        raise ValueError(f"groups has {len(g)} entries for {n} rows")
    G = sparse.csr_matrix((np.ones(n), (g, np.arange(n))), shape=(g.max() + 1 if n else 0, n))
    keys = [f.name for f in AUCDifference.__dataclass_fields__.values()]
    out = {k: np.full(labels.shape[1], np.nan) for k in keys}
    for lo in range(0, labels.shape[1], BLOCK):
        hi = min(lo + BLOCK, labels.shape[1])
        lab = np.ascontiguousarray(labels[:, lo:hi].T)
        p, q = lab == 1, lab == 0
        m, k = p.sum(1).astype(np.int64), q.sum(1).astype(np.int64)
        mf, kf = m.astype(np.float64), k.astype(np.float64)
        mi, ni = _per_cluster(G, p), _per_cluster(G, q)
        counts = _counts(mi, ni)
        block = {"n_pos": mf, "n_neg": kf}
        centred = []
        for key, s in (("a", a), ("b", b)):
            auc, w10, w01 = _components(np.ascontiguousarray(s[:, lo:hi].T), p, q, m, k)
            d10, d01 = _centred(G, w10, w01, mi, ni, auc, mf, kf)
            block[f"auc_{key}"] = auc
            (block[f"var_{key}"], block[f"df_{key}"], block[f"var_pos_{key}"],
             block[f"var_neg_{key}"]) = _sum_contributions(d10, d01, counts, mf, kf, auc, parts=True)
            centred.append((d10, d01))
        (d10a, d01a), (d10b, d01b) = centred
        block["diff"] = block["auc_a"] - block["auc_b"]
        block["var"], block["df"], block["var_pos"], block["var_neg"] = _sum_contributions(
            d10a - d10b, d01a - d01b, counts, mf, kf, block["diff"], parts=True)
        block["pos_clusters"], block["neg_clusters"] = counts[0].astype(np.float64), counts[1].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            block["pos_effective"], block["neg_effective"] = mf ** 2 / (mi ** 2).sum(0), kf ** 2 / (ni ** 2).sum(0)
        for key in keys:
            out[key][lo:hi] = block[key]
    if groups is None:
        for key in ("df", "df_a", "df_b"):
            out[key][:] = np.nan
    for key in ("n_pos", "n_neg", "pos_clusters", "neg_clusters"):
        out[key] = out[key].astype(np.int64)
    return AUCDifference(**({k: v[0] for k, v in out.items()} if squeeze else out))


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
