"""Benchmark: AUC + DeLong variance for 1,500 phecodes x 20,000 stays, against a scikit-learn loop.

    python bench/bench_auc.py [--stays 20000] [--phecodes 1500]

Both run in the same process on the same data (float32 scores with ties, 5% positives, 10% null
labels). Target: under 5 s on 2 cores. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from phewas.base.auc import auc_delong


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, default=20000)
    ap.add_argument("--phecodes", type=int, default=1500)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    y = (rng.random((a.stays, a.phecodes)) < 0.05).astype(np.int8)
    s = (rng.random((a.stays, a.phecodes)) + 0.3 * y).astype(np.float32)
    y[rng.random(y.shape) < 0.1] = -1
    t = time.perf_counter()
    auc = auc_delong(s, y).auc
    fast = time.perf_counter() - t
    t = time.perf_counter()
    ref = np.array([roc_auc_score(y[y[:, j] >= 0, j], s[y[:, j] >= 0, j]) for j in range(a.phecodes)])
    slow = time.perf_counter() - t
    print(json.dumps({"bench": "auc_delong", "stays": a.stays, "phecodes": a.phecodes,
                      "vectorised_auc_and_delong_s": round(fast, 2), "sklearn_loop_auc_only_s": round(slow, 2),
                      "ratio": round(slow / fast, 1), "max_abs_diff": float(np.max(np.abs(auc - ref))),
                      "cores": os.cpu_count(),
                      "command": f"python bench/bench_auc.py --stays {a.stays} --phecodes {a.phecodes}"}))


if __name__ == "__main__":
    main()
