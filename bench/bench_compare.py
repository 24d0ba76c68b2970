"""Benchmark: ``phewas compare`` at MC-MED scale: two models, 1,500 phecodes x 18,000
held-out stays of 15,800 patients, the whole command (inputs read and checked, clustered AUCs
and paired differences, BH, figures, HTML). Target: under a minute on 2 cores.

    python bench/bench_compare.py [--out bench/out/compare_scale] [--phecodes 1500] [--stays 18000]

Baseline in the same run: the two models' clustered AUCs alone (``auc_delong`` twice, in
process), the least that any comparison has to compute. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_phetk import run_measured  # noqa: E402
from bench_report import make_inputs  # noqa: E402

from phewas.base.auc import auc_delong  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/out/compare_scale"))
    ap.add_argument("--phecodes", type=int, default=1500)
    ap.add_argument("--stays", type=int, default=18000)
    ap.add_argument("--patients", type=int, default=15800)
    a = ap.parse_args()
    cohort = a.out / "cohort"
    y, scores, patient, *_ = make_inputs(cohort, a.phecodes, a.stays, a.patients)
    # a second model: the first's scores blurred (correlated with it, weaker)
    rng = np.random.default_rng(1)
    other = scores + rng.normal(scale=0.15, size=scores.shape)
    pred = pl.read_parquet(cohort / "predictions.parquet")
    codes = [c for c in pred.columns if c not in ("stay_id", "n_windows")]
    second = a.out / "blurred" / "predictions.parquet"
    second.parent.mkdir(parents=True, exist_ok=True)
    blurred = {c: pl.Series(other[:, j].astype(np.float32)) for j, c in enumerate(codes)}
    pred.with_columns(**blurred).write_parquet(second)
    cmd = [sys.executable, "-m", "phewas.cli", "compare", "--cohort", str(cohort), "--predictions",
           str(cohort / "predictions.parquet"), str(second), "--names", "model", "blurred",
           "--out", str(a.out / "compare"), "--min-positives", "100", "--force", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    ours = run_measured(cmd, env=env)
    t = time.perf_counter()
    for s in (scores, other):
        auc_delong(s, y, groups=patient)
    baseline = time.perf_counter() - t
    summary = json.loads((a.out / "compare" / "summary.json").read_text())
    p = summary["pairs"][0]
    print(json.dumps({
        "bench": "compare_scale", "phecodes": a.phecodes, "stays": a.stays, "patients": a.patients,
        "phenotypes_compared": p["n_phenotypes"], "model_better": p["n_a_better"], "blurred_better": p["n_b_better"],
        "compare_wall_s": ours["wall_s"], "compare_peak_rss_gb": ours["peak_rss_gb"],
        "two_clustered_auc_passes_s": round(baseline, 2),
        "ratio_compare_to_auc_passes": round(ours["wall_s"] / baseline, 1),
        "cores": os.cpu_count(), "command": "python bench/bench_compare.py",
    }))


if __name__ == "__main__":
    main()
