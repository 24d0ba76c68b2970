"""Multiple testing over a report's phenotypes: Benjamini-Hochberg q-values and Bonferroni flags."""

from __future__ import annotations

import numpy as np
from scipy import stats


def adjust(p_values: np.ndarray, alpha: float = 0.05):
    """Benjamini-Hochberg q-values and Bonferroni flags over the finite p-values; NaN stays NaN / False."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    bonf = ok & (p < alpha / max(int(ok.sum()), 1))
    return q, bonf
