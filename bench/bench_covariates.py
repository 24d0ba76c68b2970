"""Calibration study: does adjusting for a categorical covariate that confounds the score and the
disease give a calibrated association test, and what does leaving it out cost?

Populations are drawn by ``tests/populations.py`` (``confounded_nulls``; not the project's
simulator): a race with four levels moves both the disease risk and the score, patients return
(``1 + Poisson(0.6)`` stays) and the score has a patient effect; every phenotype is null given age,
sex and race. Each population has ``--phenotypes`` phenotypes with prevalence from 0.3% to 30%,
so the persons tested range from a handful of cases to hundreds. For two confounding strengths
(0.5 and 1 on the logit and the score's scale) the share of p-values below 0.05 is reported
adjusted for age, sex and race, and for age and sex alone, overall and by the number of case
persons (5-49, 50-199, 200+).

    python bench/bench_covariates.py [--populations 4] [--phenotypes 250] [--patients 3000]

Target: adjusted, 3-7% below 0.05 in every band. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from populations import confounded_nulls  # noqa: E402

from reports.adjustment import adjustment_design as design  # noqa: E402
from reports.association import associate_all  # noqa: E402

BANDS = ((5, 50), (50, 200), (200, 10 ** 9))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--populations", type=int, default=4)
    ap.add_argument("--phenotypes", type=int, default=250)
    ap.add_argument("--patients", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    t = time.perf_counter()
    result = {"bench": "covariates", "populations": a.populations, "phenotypes": a.phenotypes,
              "patients": a.patients}
    for strength in (0.5, 1.0):
        found = {"adjusted": [], "age_sex_only": []}
        for _ in range(a.populations):
            y, score, age, sex, race, patient = confounded_nulls(rng, a.patients, a.phenotypes, strength,
                                                                 lowest=0.003)
            order = np.arange(len(patient))
            for name, d in (("adjusted", design(age, sex, {"race": race})), ("age_sex_only", design(age, sex))):
                rows = associate_all(y, score, d, sex, groups=patient, order=order, folds=2, seed=0, min_persons=5)
                found[name] += [(r["p_value"], r["n_pos_patients"], r["method"]) for r in rows
                                if r["method"] != "none"]
        for name, rows in found.items():
            p = np.array([r[0] for r in rows])
            cases = np.array([r[1] for r in rows])
            key = f"strength_{strength:g}/{name}"
            result[f"{key}/tests"] = len(p)
            result[f"{key}/p_below_0.05"] = round(float(np.mean(p < 0.05)), 4)
            for lo, hi in BANDS:
                band = (cases >= lo) & (cases < hi)
                label = f"{lo}-{hi - 1}" if hi < 10 ** 9 else f"{lo}+"
                result[f"{key}/cases_{label}/p_below_0.05"] = (
                    f"{np.mean(p[band] < 0.05):.3f} of {int(band.sum())}" if band.any() else None)
            if name == "adjusted":
                result[f"{key}/firth_tests"] = sum(r[2] == "firth" for r in rows)
    result.update(seconds=round(time.perf_counter() - t, 1), cores=os.cpu_count(),
                  command="python bench/bench_covariates.py")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
