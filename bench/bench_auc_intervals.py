"""Calibration study: which interval of one AUC, and of a paired AUC difference, holds at every AUC
from 0.6 to 0.99 with 20 to 200 case patients and returning patients?

Populations are drawn by ``tests/populations.py`` (not the project's simulator): 2.5% prevalence,
``1 + Poisson(1)`` stays per patient and 12% frequent visitors with six, chronic labels, a
patient effect shared by a patient's stays, normal or skewed noise; the true AUC is known. Each
cell of the grid (true AUC x case patients x noise) is drawn ``--replicates`` times; for each
candidate interval the study reports its coverage of the truth, and its median and 95th-percentile
width against the sampling spread (2 x 1.96 x the SD of the estimates over the replicates). The
paired difference compares two correlated models on the same stays, one at the cell's AUC and one
a little weaker (its case effect 0.85 of the first's; on an equal pair, a null).

Targets: coverage 93-97%, median width <= 1.25 x the spread, 95th percentile <= 2 x, never
degenerate (a NaN or zero-width interval counts as a miss).

    python bench/bench_auc_intervals.py [--replicates 300] [--quick]

Writes ``bench/out/auc_intervals.csv`` (one row per cell and method) and prints one JSON line.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from populations import delta_for, draw, true_auc  # noqa: E402

from phewas.base.auc import auc_delong, auc_difference  # noqa: E402
from reports.intervals import (  # noqa: E402
    auc_ci,
    auc_interval,
    auc_score_ci,
    difference_interval,
    difference_test,
    floored_var,
    satterthwaite_df,
    scaled_difference_var,
)

# The candidates of the calibration study, by name: functions of
# an AUCs (or AUCDifference) record giving (low, high[, p]).
AUC_METHODS = {
    "logit_t_kish": lambda r: auc_ci(r.auc, r.var, df=r.df),
    "logit_z": lambda r: auc_ci(r.auc, r.var),
    "logit_t_satterthwaite": lambda r: auc_ci(r.auc, r.var, df=satterthwaite_df(r.var_pos, r.var_neg,
                                                                                r.pos_clusters, r.neg_clusters)),
    "score_kish": lambda r: auc_score_ci(r.auc, r.pos_effective, r.neg_effective),
    "score_clusters": lambda r: auc_score_ci(r.auc, r.pos_clusters, r.neg_clusters),
    "score_scaled_t": lambda r: auc_score_ci(r.auc, r.pos_clusters, r.neg_clusters, var=r.var,
                                             df=satterthwaite_df(r.var_pos, r.var_neg, r.pos_clusters,
                                                                 r.neg_clusters)),
    "logit_t_satterthwaite_floor": lambda r: auc_ci(r.auc, floored_var(r.var, r.auc, r.n_pos, r.n_neg),
                                                    df=satterthwaite_df(r.var_pos, r.var_neg, r.pos_clusters,
                                                                        r.neg_clusters)),
    "logit_t_satterthwaite_kish_floor": lambda r: auc_interval(r)[:2],  # the rule chosen
}
DIFFERENCE_METHODS = {
    "t_kish": lambda d: difference_test(d.diff, d.var, d.df),
    "z": lambda d: difference_test(d.diff, d.var),
    "t_satterthwaite": lambda d: difference_test(d.diff, d.var, satterthwaite_df(d.var_pos, d.var_neg,
                                                                                d.pos_clusters, d.neg_clusters)),
    "t_satterthwaite_scaled": lambda d: difference_test(d.diff, scaled_difference_var(d), satterthwaite_df(
        d.var_pos, d.var_neg, d.pos_clusters, d.neg_clusters)),
    "t_satterthwaite_kish_scaled": lambda d: difference_interval(d)[:3],  # the rule chosen
}


AUCS = (0.6, 0.75, 0.9, 0.95, 0.99)
CASES = (20, 50, 100, 200)
SKEWED_CELLS = ((0.9, 25), (0.97, 25), (0.97, 100))  # skewed noise breaks the variance model's shape


def cell(rng, auc: float, cases: int, skewed: bool, replicates: int, weaker: float) -> list[dict]:
    delta = delta_for(auc, 1.0, skewed)
    truth_a, truth_b = true_auc(delta, 1.0, skewed), true_auc(weaker * delta, 1.0, skewed)
    single = {m: [] for m in AUC_METHODS}
    paired = {m: [] for m in DIFFERENCE_METHODS}
    estimates, diffs = [], []
    for _ in range(replicates):
        pop = draw(rng, cases, (delta, weaker * delta), skewed=skewed)
        r = auc_delong(pop.scores[0], pop.label, groups=pop.patient)
        estimates.append(r.auc)
        for name, method in AUC_METHODS.items():
            single[name].append(method(r))
        d = auc_difference(pop.scores[0], pop.scores[1], pop.label, groups=pop.patient)
        diffs.append(d.diff)
        for name, method in DIFFERENCE_METHODS.items():
            paired[name].append(method(d)[:2])
    rows = []
    for kind, table, est, truth in (("auc", single, estimates, truth_a), ("difference", paired, diffs,
                                                                          truth_a - truth_b)):
        spread = 2 * 1.959964 * float(np.std(est, ddof=1))
        for name, bounds in table.items():
            lo, hi = np.array([b[0] for b in bounds], float), np.array([b[1] for b in bounds], float)
            ok = np.isfinite(lo) & np.isfinite(hi) & (hi > lo)
            width = np.where(ok, hi - lo, np.nan)
            rows.append({"target": kind, "method": name, "true_auc": round(truth_a, 4), "case_patients": cases,
                         "noise": "skewed" if skewed else "normal", "truth": truth,
                         "coverage": float(np.mean(ok & (lo <= truth) & (truth <= hi))),
                         "degenerate": float(np.mean(~ok)), "spread": spread,
                         "median_width_over_spread": float(np.nanmedian(width) / spread) if spread > 0 else np.nan,
                         "p95_width_over_spread": float(np.nanquantile(width, 0.95) / spread) if spread > 0 else np.nan,
                         "replicates": replicates})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="fewer cells (a smoke run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/out/auc_intervals.csv"))
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    t = time.perf_counter()
    cells = [(auc, cases, False) for auc in AUCS for cases in CASES] + [(auc, c, True) for auc, c in SKEWED_CELLS]
    if a.quick:
        cells = [(0.75, 25, False), (0.97, 25, False), (0.97, 25, True)]
    rows = []
    for auc, cases, skewed in cells:
        rows += cell(rng, auc, cases, skewed, a.replicates, weaker=0.85)
    table = pl.DataFrame(rows)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(a.out)
    summary = {"bench": "auc_intervals", "replicates_per_cell": a.replicates, "cells": len(cells),
               "wall_s": round(time.perf_counter() - t, 1), "table": str(a.out)}
    for (target, method), g in table.group_by("target", "method", maintain_order=True):
        meets = ((g["coverage"] >= 0.93) & (g["coverage"] <= 0.97) & (g["median_width_over_spread"] <= 1.25)
                 & (g["p95_width_over_spread"] <= 2.0) & (g["degenerate"] == 0))
        summary[f"{target}/{method}"] = {
            "cells_meeting_every_target": f"{int(meets.sum())} of {g.height}",
            "coverage_range": [round(g["coverage"].min(), 3), round(g["coverage"].max(), 3)],
            "median_width_over_spread_max": round(g["median_width_over_spread"].max(), 2),
            "p95_width_over_spread_max": round(g["p95_width_over_spread"].max(), 2),
            "degenerate_max": round(g["degenerate"].max(), 3)}
    summary |= {"cores": os.cpu_count(), "command": "python bench/bench_auc_intervals.py"}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
