"""Benchmark: false discoveries of the whole pipeline over replicate simulated studies.

    python bench/bench_fdr.py [--seeds 101-112] [--out bench/out/fdr] [--keep-data] [--reanalyse]

Each replicate is the ground-truth test's small study (800 patients, ``tests/test_ground_truth.py``)
with another simulator seed, run end to end by ``phewas run-all``. Benjamini-Hochberg bounds the
*expected* false discovery proportion (the FDR), not each study's proportion, so the figure that
matters is the mean over replicates; the per-study spread and the null p-values' calibration
are printed with it. Waveforms and segments are deleted after each replicate unless
``--keep-data``; predictions and labels are kept, and ``--reanalyse`` recomputes the reports and
truth checks of finished replicates from them with the current code (after a change to the
report). ``--compare-tests`` also runs, on the same predictions, the two tests the report does
not use: the likelihood-ratio test over all stays and the Wald test with a patient-clustered
sandwich variance (the report's test until this benchmark showed it anti-conservative). Prints
one JSON line.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_ground_truth import CONFIG  # noqa: E402  the test's study, one definition

from phewas.io import write_json  # noqa: E402
from phewas.progress import set_quiet  # noqa: E402
from phewas.run_all import load_config, report_config, run_all  # noqa: E402
from phewas.truth import check_recovery  # noqa: E402
from reports.association import adjust, covariates, score_z  # noqa: E402
from reports.report import load_inputs, make_report  # noqa: E402


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
    stays, y, scores, info, _ = load_inputs(work / "cohort", work / "finetune" / "predictions.parquet", "heldout")
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="101-112")
    ap.add_argument("--out", default="bench/out/fdr")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--reanalyse", action="store_true")
    ap.add_argument("--compare-tests", action="store_true")
    a = ap.parse_args()
    set_quiet(True)
    out = Path(a.out)
    rows, null_p, seconds = [], [], []
    other = {"stays_lrt": ([], []), "stays_clustered_wald": ([], [])}  # null p-values, FDP per study
    for seed in _seeds(a.seeds):
        study = out / f"seed{seed}"
        study.mkdir(parents=True, exist_ok=True)
        cfg = study / "study.toml"
        cfg.write_text(CONFIG.replace("seed = 2", f"seed = {seed}", 1))
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
              "stage_seconds_per_study": round(float(np.mean(seconds)), 1), "cores": os.cpu_count(),
              "command": " ".join(["python bench/bench_fdr.py", *sys.argv[1:]])}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
