"""Benchmark: ``phewas report`` at MC-MED scale: 1,500 phecodes x 18,000 held-out stays
of 15,800 patients, everything on (clustered AUC intervals, person-level tests adjusted for an
age spline, sex and two covariates (``race``, text with five levels, and ``triage_hr``, numeric
with 1% missing) with the Firth fallback, out-of-fold AUCs, figures, HTML), ``--workers 2``; and
the same report adjusted for age and sex alone.

    python bench/bench_report.py [--out bench/out/report_scale] [--phecodes 1500] [--stays 18000]

Peer in the same run: a plain statsmodels loop over the same phecodes, fitting only the two
logistic models of each person-level test with the same covariates (no out-of-fold AUCs, no
Firth, one process). The report process's wall time and peak memory come from its own rusage
(``os.wait4``). Targets: with the two covariates, under 90 s and under 4 GB on 2 cores. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import statsmodels.api as sm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_phetk import run_measured  # noqa: E402

from cohorts.phecodes import load_phecode_map  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_association import covariates  # noqa: E402  the one-at-a-time reference

from reports.association import latest_per_patient, score_z  # noqa: E402


def make_inputs(out: Path, n_phecodes: int, n_stays: int, n_patients: int, seed: int = 0):
    """A cohort folder (stays, labels, phecodes) and predictions: prevalences 0.5-15%, labels
    constant within a patient, a third of the phecodes with a real score effect."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    pmap = load_phecode_map()
    codes = sorted(rng.choice(pmap.phecodes.filter(pl.col("sex") == "Both")["phecode"].to_numpy(),
                              n_phecodes, replace=False).tolist())
    patient = np.concatenate([np.arange(n_patients), rng.integers(0, n_patients, n_stays - n_patients)])
    ids = np.array([f"{10_000_000 + i}" for i in range(n_stays)])
    age_p = np.round(rng.uniform(18, 90, n_patients))
    sex_p = rng.choice(["F", "M", "U"], n_patients, p=[0.53, 0.465, 0.005])
    race_p = rng.choice(RACES, n_patients, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    hr = np.round(rng.normal(85, 15, n_stays)).astype(int).astype(str).astype(object)
    hr[rng.random(n_stays) < 0.01] = None
    pl.DataFrame({"stay_id": ids, "patient_id": patient.astype(str), "age": age_p[patient].astype(np.int16),
                  "sex": sex_p[patient], "has_ppg": True, "has_sync_ecg": False, "split": "heldout",
                  "arrival": (np.arange(n_stays) * 1_000_000).astype("datetime64[us]"),
                  "race": race_p[patient], "triage_hr": pl.Series(hr.tolist(), dtype=pl.String)}).write_parquet(
        out / "stays.parquet")
    prev = np.exp(rng.uniform(np.log(0.005), np.log(0.15), n_phecodes))
    y_pat = rng.random((n_patients, n_phecodes)) < prev
    y = y_pat[patient].astype(np.int8)
    y[rng.random(y.shape) < 0.05] = -1
    effect = np.where(rng.random(n_phecodes) < 1 / 3, 0.8, 0.0)
    scores = 1 / (1 + np.exp(-(rng.normal(size=y.shape) + effect * (y == 1) - 2)))
    lab = pl.DataFrame({"stay_id": ids, **{c: y[:, j] for j, c in enumerate(codes)}})
    lab.with_columns(pl.when(pl.col(c) >= 0).then(pl.col(c)).alias(c) for c in codes).write_parquet(
        out / "labels.parquet")
    info = pmap.phecodes.filter(pl.col("phecode").is_in(codes)).select("phecode", "description", "chapter", "sex")
    info.with_columns(n_cases_heldout=pl.Series((y == 1).sum(0)), n_controls_heldout=pl.Series((y == 0).sum(0))
                      ).write_parquet(out / "phecodes.parquet")
    pl.DataFrame({"stay_id": ids, "n_windows": pl.Series(np.full(n_stays, 20), dtype=pl.Int32),
                  **{c: scores[:, j].astype(np.float32) for j, c in enumerate(codes)}}).write_parquet(
        out / "predictions.parquet")
    extra = np.column_stack([race_p[patient][:, None] == RACES[1:][None, :],
                             np.array([np.nan if v is None else float(v) for v in hr])])
    return y, scores, patient, age_p[patient], sex_p[patient], extra


RACES = np.array(["White", "Black", "Asian", "Other", "Unknown"])


def statsmodels_loop(y, scores, patient, age, sex, extra, min_positives):
    """The peer: per phecode, persons (latest stay with the covariates known), two Logit fits with
    the same covariates and the LRT."""
    t = time.perf_counter()
    known = np.isfinite(extra).all(1)
    order = np.arange(len(patient))
    tested = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(y.shape[1]):
            use = (y[:, j] >= 0) & known
            keep = latest_per_patient(patient[use], order[use]) & (sex[use] != "U")
            yy = y[use, j][keep]
            if min(yy.sum(), len(yy) - yy.sum()) < min_positives:
                continue
            C = sm.add_constant(np.column_stack([covariates(age[use][keep], sex[use][keep]), extra[use][keep]]),
                                has_constant="add")
            sm.Logit(yy, C).fit(disp=0)
            sm.Logit(yy, np.column_stack([C, score_z(scores[use, j][keep])])).fit(disp=0)
            tested += 1
    return time.perf_counter() - t, tested


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/out/report_scale"))
    ap.add_argument("--phecodes", type=int, default=1500)
    ap.add_argument("--stays", type=int, default=18000)
    ap.add_argument("--patients", type=int, default=15800)
    ap.add_argument("--min-positives", type=int, default=100)
    a = ap.parse_args()
    cohort = a.out / "cohort"
    y, scores, patient, age, sex, extra = make_inputs(cohort, a.phecodes, a.stays, a.patients)
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}  # as from a shell
    runs = {}
    for name, flags in (("two_covariates", ["--covariates", "race", "triage_hr"]), ("age_sex_only", [])):
        cmd = [sys.executable, "-m", "phewas.cli", "report", "--cohort", str(cohort), "--predictions",
               str(cohort / "predictions.parquet"), "--out", str(a.out / f"report_{name}"), "--min-positives",
               str(a.min_positives), "--workers", "2", "--force", "--quiet", *flags]
        runs[name] = run_measured(cmd, env=env)
    summary = json.loads((a.out / "report_two_covariates" / "summary.json").read_text())
    loop_s, tested = statsmodels_loop(y, scores, patient, age, sex, extra, a.min_positives)
    ours = runs["two_covariates"]
    print(json.dumps({
        "bench": "report_scale", "phecodes": a.phecodes, "stays": a.stays, "patients": a.patients,
        "covariates": "race (5 levels) + triage_hr (linear, 1% missing)",
        "phenotypes_reported": summary["n_phenotypes"], "tests_by_method": summary["tests_by_method"],
        "report_wall_s": ours["wall_s"], "report_peak_rss_gb": ours["peak_rss_gb"],
        "report_age_sex_only_wall_s": runs["age_sex_only"]["wall_s"],
        "statsmodels_loop_two_fits_only_s": round(loop_s, 1), "statsmodels_loop_phecodes_tested": tested,
        "ratio_report_to_loop": round(ours["wall_s"] / loop_s, 2), "cores": os.cpu_count(),
        "command": "python bench/bench_report.py",
    }))


if __name__ == "__main__":
    main()
