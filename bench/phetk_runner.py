"""Run PheTK 0.3.6 on an ICD event table: ``count_phecode`` and its case/control preparation for
every phecode 1.2 code. Runs inside PheTK's own virtual environment (PheTK needs numpy<2), started
by ``bench/bench_phetk.py``; it imports nothing from this project.

    PHETK_PY bench/phetk_runner.py EVENTS.tsv COHORT.tsv OUT_DIR [--min-count 2]

Writes ``OUT_DIR/phetk_labels.npy`` (int8 [persons, phecodes]: 1 case, 0 control, -1 neither, the
persons sorted by id as in ``COHORT.tsv``, the phecodes in the map's sorted order) and
``OUT_DIR/phetk_timing.json``.
"""

import argparse
import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
from phetk.phecode import Phecode
from phetk.phewas import PheWAS


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("events")
    ap.add_argument("cohort")
    ap.add_argument("out", type=Path)
    ap.add_argument("--min-count", type=int, default=2)
    a = ap.parse_args()
    t0 = time.perf_counter()
    counts = a.out / "phetk_counts.tsv"
    sink = io.StringIO()  # PheTK prints its progress; keep the benchmark's output to one line
    with contextlib.redirect_stdout(sink):
        ph = Phecode(platform="custom", icd_file_path=a.events)
        ph.count_phecode(phecode_version="1.2", output_file_path=str(counts))
        t_count = time.perf_counter() - t0
        persons = pl.read_csv(a.cohort, separator="\t")["person_id"].to_numpy()
        pw = PheWAS(phecode_version="1.2", phecode_count_file_path=str(counts),
                    cohort_file_path=a.cohort, covariate_cols=["age", "sex"],
                    independent_variable_of_interest="x", sex_at_birth_col="sex", male_as_one=True,
                    min_cases=1, min_phecode_count=a.min_count, use_exclusion=True,
                    output_file_path=str(a.out / "phetk_phewas"))
        phecodes = sorted(pw.phecode_df["phecode"].unique().to_list())
        row = {p: i for i, p in enumerate(persons)}
        labels = np.full((len(persons), len(phecodes)), -1, dtype=np.int8)
        for j, p in enumerate(phecodes):
            cases, controls, _ = pw._case_control_prep(p, keep_ids=True)
            for ids, value in ((controls, 0), (cases, 1)):
                if len(ids):
                    labels[[row[i] for i in ids["person_id"].to_list()], j] = value
    wall = time.perf_counter() - t0
    np.save(a.out / "phetk_labels.npy", labels)
    (a.out / "phetk_phecodes.json").write_text(json.dumps(phecodes))
    (a.out / "phetk_timing.json").write_text(json.dumps(
        {"count_phecode_s": round(t_count, 1), "wall_s": round(wall, 1)}))


if __name__ == "__main__":
    main()
