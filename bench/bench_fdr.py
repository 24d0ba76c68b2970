"""Benchmark: false discoveries of the whole pipeline over replicate simulated studies.

    python bench/bench_fdr.py [--design hard|standard] [--seeds 101-112] [--out bench/out/fdr-hard]
                              [--reference-patients 20000] [--keep-data] [--reanalyse]

Each replicate is the ground-truth test's small study (800 patients, ``tests/app/test_study.py``)
with another simulator seed, run end to end by ``phewas run-all``. ``--design hard`` (the default)
simulates the harder population (``PopulationConfig(hard=True)``: non-linear age risks,
saturating vascular age, a stronger patient factor, frequent visitors, stays without usable PPG)
and keeps one disease world (``world_seed``) across replicates, so that each phecode has one true
AUC per fitted model: each replicate's model also predicts the held-out stays of a large
reference population of that world (simulated once), whose AUC stands for the truth that the
replicate's 95% interval should cover. ``--design standard`` uses the
standard simulator, a new world per seed, and measures no coverage. Benjamini-Hochberg bounds the
*expected* false discovery proportion (the FDR), not each study's proportion, so the figure that
matters is the mean over replicates; the per-study spread and the null p-values' calibration
are printed with it. Waveforms and segments are deleted after each replicate unless
``--keep-data``; predictions and labels are kept, and ``--reanalyse`` recomputes the reports and
truth checks of finished replicates from them with the current code (after a change to the
report). ``--compare-tests`` also runs, on the same predictions, the two tests the report does
not use: the likelihood-ratio test over all stays and the Wald test with a patient-clustered
sandwich variance. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import statsmodels.api as sm
from scipy import stats

from phewas.base.auc import auc_delong
from phewas.base.io import write_json
from phewas.base.progress import set_quiet
from phewas.study import load_config, report_config, run_all
from reports.association import score_z
from reports.multiple_testing import adjust
from reports.report import load_inputs, make_report
from reports.truth import check_recovery

TESTS = Path(__file__).resolve().parents[1] / "tests"
CONFIG = (TESTS / "fixtures" / "study.toml").read_text()  # the whole-study test's
sys.path.insert(0, str(TESTS))
from reference_association import covariates  # noqa: E402  the one-at-a-time reference

WORLD_SEED = 7
REFERENCE_SEED = 99_999
MIN_REFERENCE_POSITIVES = 200  # phecodes with fewer positive reference stays have no usable truth


def study_config(seed: int, design: str, patients: int = 800) -> str:
    """The replicate's run-all configuration: the test's study with ``seed`` (and ``patients``)."""
    text = CONFIG.replace("seed = 2", f"seed = {seed}", 1).replace("patients = 800", f"patients = {patients}", 1)
    if design == "hard":
        text = text.replace(f"seed = {seed}", f"seed = {seed}\nworld_seed = {WORLD_SEED}\nhard = true", 1)
    return text


def reference_population(out: Path, patients: int) -> Path:
    """Simulate, build and extract the hard world's reference population once; its waveforms are
    deleted after extraction. Returns the cohort folder."""
    from cohorts.build import CohortConfig, build_cohort
    from cohorts.segments import SegmentConfig, extract_segments
    from cohorts.sim import PopulationConfig, simulate_dataset

    data, cohort = out / "mcmed", out / "cohort"
    if (cohort / "segments" / "manifest.json").exists():
        return cohort
    simulate_dataset(data, PopulationConfig(patients=patients, seed=REFERENCE_SEED, world_seed=WORLD_SEED,
                                            hard=True, minutes=3.0, injected_prevalence_scale=2.0),
                     overwrite=True)
    build_cohort(data, cohort, CohortConfig(), overwrite=True)
    extract_segments(data, cohort, SegmentConfig(per_stay=20), overwrite=True)
    shutil.rmtree(data / "waveforms", ignore_errors=True)
    return cohort


def reference_aucs(study: Path, reference: Path) -> dict[str, tuple[float, float, int]]:
    """Per phecode, the replicate's model's AUC on the reference's held-out stays with windows:
    ``(auc, its patient-clustered standard error, positive stays)``."""
    from encoder.config import PredictConfig
    from encoder.predict import predict

    run, ft = study / "work" / "on_reference", study / "work" / "finetune"
    run.mkdir(exist_ok=True)
    for name in ("config.json", "targets.json", "checkpoints", "manifest.json"):
        if not (run / name).exists():
            (run / name).symlink_to((ft / name).resolve())
    if not (run / "predictions.parquet").exists():
        predict(reference, run, PredictConfig(split="heldout"), overwrite=True)
    inputs = load_inputs(reference, run / "predictions.parquet", "heldout")
    y, scores, info = inputs.y, inputs.scores, inputs.info
    r = auc_delong(scores, y, inputs.stays["patient_id"].to_numpy())
    auc, var, n_pos = r.auc, r.var, r.n_pos
    return {p: (float(auc[j]), float(np.sqrt(var[j])), int(n_pos[j])) for j, p in enumerate(info["phecode"])
            if n_pos[j] >= MIN_REFERENCE_POSITIVES and np.isfinite(var[j])}


def coverage(table: pl.DataFrame, truth: dict[str, tuple[float, float, int]]) -> list[dict]:
    """One row per phecode with a reference truth and a finite interval in ``table``."""
    rows = []
    for r in table.iter_rows(named=True):
        t = truth.get(r["phecode"])
        if t is None or r["auc_ci_low"] is None or not np.isfinite(r["auc_ci_low"]):
            continue
        rows.append({"phecode": r["phecode"], "covered": r["auc_ci_low"] <= t[0] <= r["auc_ci_high"],
                     "reference_auc": t[0], "reference_se": t[1], "auc": r["auc"],
                     "half_width": (r["auc_ci_high"] - r["auc_ci_low"]) / 2})
    return rows


def _seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def reanalyse(study: Path) -> None:
    """The report stage of ``run_all`` again, on the kept predictions."""
    rcfg, work = report_config(load_config(study / "study.toml")), study / "work"
    make_report(work / "cohort", work / "finetune" / "predictions.parquet", work / "report", rcfg, overwrite=True)
    write_json(work / "truth_check.json",
               check_recovery(work / "report" / "phenotypes.parquet", study / "mcmed" / "truth.json", rcfg.alpha))


def stay_level_tests(study: Path, phecodes: list[str]) -> dict[str, np.ndarray]:
    """p-values over all stays of ``phecodes``: likelihood-ratio test, patient-clustered Wald test."""
    work = study / "work"
    inputs = load_inputs(work / "cohort", work / "finetune" / "predictions.parquet", "heldout")
    stays, y, scores, info = inputs.stays, inputs.y, inputs.scores, inputs.info
    column = {p: j for j, p in enumerate(info["phecode"])}
    age, sex = stays["age"].to_numpy().astype(float), stays["sex"].to_numpy()
    patient = np.unique(stays["patient_id"].to_numpy(), return_inverse=True)[1]
    out = {"stays_lrt": [], "stays_clustered_wald": []}
    for p in phecodes:
        use = y[:, column[p]] >= 0
        yy = y[use, column[p]].astype(int)
        C = sm.add_constant(covariates(age[use], sex[use]), has_constant="add")
        X = np.column_stack([C, score_z(scores[use, column[p]])])
        reduced = sm.Logit(yy, C).fit(disp=0, maxiter=100)
        full = sm.Logit(yy, X).fit(disp=0, maxiter=100)
        out["stays_lrt"].append(stats.chi2.sf(max(2 * (full.llf - reduced.llf), 0.0), 1))
        clustered = sm.Logit(yy, X).fit(disp=0, maxiter=100, cov_type="cluster",
                                        cov_kwds={"groups": patient[use]})
        out["stays_clustered_wald"].append(clustered.pvalues[-1])
    return {k: np.asarray(v) for k, v in out.items()}


def fdp(p: np.ndarray, is_null: np.ndarray, alpha: float = 0.05) -> float:
    found = adjust(p, alpha)[0] <= alpha
    return float((found & is_null).sum() / found.sum()) if found.any() else 0.0


def summarise(rows: list[dict], null_p: np.ndarray) -> dict:
    props = np.array([r["false_discovery_proportion"] for r in rows])
    return {
        "replicates": len(rows),
        "mean_fdp": float(props.mean()),
        "fdp_se": float(props.std(ddof=1) / np.sqrt(len(props))) if len(props) > 1 else float("nan"),
        "share_of_studies_with_a_false_discovery": float(np.mean([r["n_null_significant"] > 0 for r in rows])),
        "fdp_per_study": [round(float(x), 3) for x in props],
        "injected_recovered": int(sum(r["n_injected_recovered"] for r in rows)),
        "injected_total": int(sum(len(r["injected"]) for r in rows)),
        "null_mean_auc_minus_age_sex": float(np.mean([r["null_mean_auc_minus_age_sex"] for r in rows])),
        "null_p_below_0.05": float(np.mean(null_p < 0.05)) if null_p.size else float("nan"),
        "null_p_below_0.01": float(np.mean(null_p < 0.01)) if null_p.size else float("nan"),
        "null_tests": int(null_p.size),
    }


def coverage_summary(rows: list[dict]) -> dict:
    """Coverage of the 95% intervals, over all phecodes with a reference truth and over the
    injected ones; the reference's own error is reported against the intervals' width."""
    if not rows:
        return {}
    cov = np.array([r["covered"] for r in rows])
    inj = np.array([r["injected"] for r in rows])
    ratio = np.array([r["reference_se"] / (r["half_width"] / 1.96) for r in rows])
    return {"interval_coverage": float(cov.mean()), "intervals": int(cov.size),
            "interval_coverage_injected": float(cov[inj].mean()) if inj.any() else float("nan"),
            "intervals_injected": int(inj.sum()),
            "reference_se_over_interval_se_median": float(np.median(ratio))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--design", choices=("hard", "standard"), default="hard")
    ap.add_argument("--seeds", default="101-112")
    ap.add_argument("--out", default=None, help="default bench/out/fdr-hard, or bench/out/fdr (standard)")
    ap.add_argument("--reference-patients", type=int, default=20_000)
    ap.add_argument("--patients", type=int, default=800, help="patients per replicate study")
    ap.add_argument("--reference", default=None, help="reference population folder (default OUT/reference)")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--reanalyse", action="store_true")
    ap.add_argument("--compare-tests", action="store_true")
    a = ap.parse_args()
    set_quiet(True)
    out = Path(a.out or ("bench/out/fdr-hard" if a.design == "hard" else "bench/out/fdr"))
    reference = (reference_population(Path(a.reference or out / "reference"), a.reference_patients)
                 if a.design == "hard" else None)
    rows, null_p, seconds, covered = [], [], [], []
    other = {"stays_lrt": ([], []), "stays_clustered_wald": ([], [])}  # null p-values, FDP per study
    for seed in _seeds(a.seeds):
        study = out / f"seed{seed}"
        study.mkdir(parents=True, exist_ok=True)
        cfg = study / "study.toml"
        cfg.write_text(study_config(seed, a.design, a.patients))
        if not (study / "work" / "truth_check.json").exists():  # done by an earlier invocation
            run_all(cfg)  # resumes what an interrupted invocation left
        elif a.reanalyse:
            reanalyse(study)
        check = json.loads((study / "work" / "truth_check.json").read_text())
        truth = json.loads((study / "mcmed" / "truth.json").read_text())
        table = pl.read_parquet(study / "work" / "report" / "phenotypes.parquet")
        tested = table.filter(pl.col("p_value").is_not_null() & pl.col("p_value").is_not_nan())
        is_null = ~tested["phecode"].is_in(list(truth["injected"]) + truth["related"]).to_numpy()
        null_p += tested["p_value"].to_numpy()[is_null].tolist()
        if a.compare_tests:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for name, p in stay_level_tests(study, tested["phecode"].to_list()).items():
                    other[name][0].extend(p[is_null])
                    other[name][1].append(fdp(p, is_null))
        rows.append(check)
        if reference is not None:
            truth_aucs = reference_aucs(study, reference)
            injected = set(truth["injected"])
            covered += [c | {"seed": seed, "injected": c["phecode"] in injected}
                        for c in coverage(table, truth_aucs)]
        stages = json.loads((study / "work" / "run_all.json").read_text())
        seconds.append(sum(s["seconds"] or 0.0 for s in stages.values()))  # stage times of the first run
        print(json.dumps({"seed": seed, "fdp": check["false_discovery_proportion"],
                          "null_significant": check["n_null_significant"],
                          "recovered": check["n_injected_recovered"]}),
              file=sys.stderr, flush=True)
        if not a.keep_data:
            shutil.rmtree(study / "mcmed" / "waveforms", ignore_errors=True)
            shutil.rmtree(study / "work" / "cohort" / "segments", ignore_errors=True)
    result = {"bench": "fdr_replicates", **summarise(rows, np.asarray(null_p)),
              **{f"{name}_{k}": v for name, (p, f) in other.items() if f
                 for k, v in (("null_p_below_0.05", float(np.mean(np.asarray(p) < 0.05))),
                              ("mean_fdp", float(np.mean(f))))},
              **coverage_summary(covered),
              "design": a.design, "patients_per_study": a.patients,
              "reference_patients": a.reference_patients if reference else None,
              "stage_seconds_per_study": round(float(np.mean(seconds)), 1), "cores": os.cpu_count(),
              "command": " ".join(["python bench/bench_fdr.py", *sys.argv[1:]])}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
