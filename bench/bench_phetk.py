"""Benchmark: ``phewas build-cohort`` against PheTK 0.3.6 on the same MC-MED-scale input, in one run.

    python bench/bench_phetk.py [--out bench/out/mcmed_scale] [--phetk-python PATH]

Input: the tables and WFDB headers of ``bench_build_cohort.py`` (118,000 visits, 70,000 patients,
2,000,000 history rows, 125,627 headers). PheTK reads the same codes as one ICD event table
(visit diagnoses dated by arrival, history rows by their noted date; codes spelled as in the map,
since PheTK joins on the exact spelling) and a cohort table (persons of sex F or M: PheTK codes
sex as 0/1). PheTK's work is ``count_phecode`` and ``_case_control_prep`` for all 1,817 phecodes
(``min_phecode_count=2``, ``use_exclusion=True``), collected into a person x phecode matrix;
ours is ``build-cohort --codes all --min-code-count 2`` (per-person labels copied to stays, read
from tables, headers scanned, parquet written), and, for the record, the default
``--codes visit``. Each tool runs in its own process; wall time and peak resident memory come
from that process's own rusage (``os.wait4``). PheTK runs twice: as a user runs it, and with
the jemalloc setting that ``phewas.cli`` makes for itself (return freed pages at once), so that
the memory comparison does not rest on an allocator setting alone.

PheTK needs ``numpy<2 pyarrow<18 duckdb<1.3``, so it lives in its own venv, made on first use at
``OUT/phetk-venv`` unless ``--phetk-python`` names one.

Agreement: our label of each person's first stay against PheTK's, over persons x phecodes. The
rules differ in one known place: PheTK counts code rows, R PheWAS (and we) count distinct dates,
so a person whose only two rows for a phecode share a day is a case for PheTK and excluded here;
and PheTK counts an event once per matching map row, and the map repeats 366 (code, phecode)
rows. Such cells are counted independently from the event table and reported beside the
agreement.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build_cohort import make_tables  # noqa: E402

from cohorts.phecodes import map_path  # noqa: E402

PHETK_PINS = ["phetk==0.3.6", "numpy<2", "pyarrow<18", "duckdb<1.3"]
ALLOCATOR = "dirty_decay_ms:0,muzzy_decay_ms:0"  # what phewas.cli sets for polars' jemalloc


def run_measured(cmd, **kw) -> dict:
    """Run ``cmd``; return its wall seconds and peak RSS (GB) from its own rusage."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed with exit {proc.returncode}: {' '.join(map(str, cmd))}")
    return {"wall_s": round(wall, 1), "peak_rss_gb": round(usage.ru_maxrss / 1e6, 2)}


def phetk_python(out: Path, given) -> str:
    if given:
        return given
    venv = out / "phetk-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PHETK_PINS], check=True)
    return str(py)


def phetk_inputs(data: Path, out: Path):
    """ICD events and cohort tables in PheTK's format, from the MC-MED-layout tables."""
    events, cohort = out / "phetk_events.tsv", out / "phetk_cohort.tsv"
    if events.exists() and cohort.exists():
        return events, cohort
    raw = pl.read_csv(map_path(), infer_schema_length=0).select("flag", "ICD").unique()
    spelled = raw.with_columns(pl.col("ICD").str.replace_all(".", "", literal=True).alias("Code"))
    visits = pl.read_csv(data / "visits.csv", infer_schema_length=0)
    day = pl.col("Arrival_time").str.slice(0, 10)
    vis = pl.concat([
        visits.select(pl.col("MRN").alias("person_id"), day.alias("date"),
                      pl.col(col).alias("ICD"), pl.lit(flag).alias("flag"))
        for col, flag in (("Dx_ICD9", "9"), ("Dx_ICD10", "10"))]).drop_nulls("ICD")
    pmh = pl.read_csv(data / "pmh.csv", infer_schema_length=0).select(
        pl.col("MRN").alias("person_id"), pl.col("Noted_date").str.slice(0, 10).alias("date"),
        pl.col("Code"), pl.when(pl.col("CodeType") == "Dx9").then(pl.lit("9")).otherwise(pl.lit("10"))
        .alias("flag"))
    pmh = pmh.join(spelled, on=["flag", "Code"], how="inner").drop("Code")
    ev = pl.concat([vis, pmh.select(vis.columns)]).with_columns(
        pl.col("person_id").cast(pl.Int64),
        pl.when(pl.col("flag") == "9").then(pl.lit("ICD9CM")).otherwise(pl.lit("ICD10CM"))
        .alias("vocabulary_id")).drop("flag")
    ev.write_csv(events, separator="\t")
    first = (visits.with_columns(pl.col("MRN").cast(pl.Int64).alias("person_id"))
             .sort("Arrival_time").group_by("person_id").first()
             .filter(pl.col("Gender").is_in(["F", "M"])).sort("person_id"))
    first.select("person_id", pl.col("Age").cast(pl.Int64).alias("age"),
                 (pl.col("Gender") == "M").cast(pl.Int64).alias("sex"),
                 pl.lit(0.0).alias("x")).write_csv(cohort, separator="\t")
    return events, cohort


def count_rule_cells(events: Path, persons: np.ndarray, min_count: int) -> pl.DataFrame:
    """(person, phecode) cells that PheTK's count makes a case but distinct days do not.

    Counted from the event table with PheTK's own join (exact spelling, every map row: the map
    repeats 366 (code, phecode) rows, and PheTK counts an event once per matching row).
    """
    raw = pl.read_csv(map_path(), infer_schema_length=0).select("ICD", "flag", "phecode_unrolled")
    ev = pl.read_csv(events, separator="\t", infer_schema_length=0).with_columns(
        pl.when(pl.col("vocabulary_id") == "ICD9CM").then(pl.lit("9")).otherwise(pl.lit("10"))
        .alias("flag"))
    mapped = ev.join(raw, on=["ICD", "flag"], how="inner")
    per = mapped.group_by(pl.col("person_id").cast(pl.Int64), "phecode_unrolled").agg(
        pl.len().alias("rows"), pl.col("date").n_unique().alias("days"))
    return per.filter((pl.col("rows") >= min_count) & (pl.col("days") < min_count)
                      & pl.col("person_id").is_in(pl.Series(persons).implode())
                      ).select("person_id", pl.col("phecode_unrolled").alias("phecode"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/out/mcmed_scale"))
    ap.add_argument("--phetk-python", default=os.environ.get("PHETK_PYTHON"))
    ap.add_argument("--min-count", type=int, default=2)
    a = ap.parse_args()
    data = a.out / "data"
    if not (data / "pmh.csv").exists():
        data.mkdir(parents=True, exist_ok=True)
        make_tables(data)
    py = phetk_python(a.out, a.phetk_python)
    events, cohort_tsv = phetk_inputs(data, a.out)
    phetk_out = a.out / "phetk"
    phetk_out.mkdir(exist_ok=True)

    runner = Path(__file__).resolve().parent / "phetk_runner.py"
    cmd = [py, str(runner), str(events), str(cohort_tsv), str(phetk_out), "--min-count", str(a.min_count)]
    # Both tools as a user runs them from a shell: importing polars (as this script does) sets
    # _RJEM_MALLOC_CONF for child processes, which would override phewas.cli's own setting.
    # PheTK runs again with the setting our CLI makes for itself.
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    phetk = run_measured(cmd, env=env)
    phetk.update(json.loads((phetk_out / "phetk_timing.json").read_text()))
    phetk_alloc = run_measured(cmd, env={**env, "_RJEM_MALLOC_CONF": ALLOCATOR})
    ours = {}
    for mode in ("all", "visit"):
        cmd = [sys.executable, "-m", "phewas.cli", "build-cohort", "--data", str(data),
               "--out", str(a.out / f"cohort_{mode}"), "--force", "--quiet", "--codes", mode,
               "--min-code-count", str(a.min_count)]
        ours[mode] = run_measured(cmd, env=env)
        ours[mode]["command"] = " ".join(["python"] + cmd[1:])

    # agreement: each person's first stay (--codes all: every stay of a person has the same labels)
    persons = pl.read_csv(cohort_tsv, separator="\t")["person_id"].to_numpy()
    codes = json.loads((phetk_out / "phetk_phecodes.json").read_text())
    theirs = np.load(phetk_out / "phetk_labels.npy")
    stays = pl.read_parquet(a.out / "cohort_all" / "stays.parquet", columns=["stay_id", "patient_id", "arrival"])
    first = (stays.with_columns(pl.col("patient_id").cast(pl.Int64)).sort("arrival")
             .group_by("patient_id").first())
    order = pl.DataFrame({"patient_id": persons}).join(first, on="patient_id", how="left")
    labels = pl.read_parquet(a.out / "cohort_all" / "labels.parquet", columns=["stay_id", *codes])
    mine = (order.select("stay_id").join(labels, on="stay_id", how="left", maintain_order="left")
            .select(codes).fill_null(-1).to_numpy().astype(np.int8))
    differ = mine != theirs
    n_cells = int(differ.size)
    odd = count_rule_cells(events, persons, a.min_count)
    r, c = np.nonzero(differ)
    cells = pl.DataFrame({"person_id": persons[r], "phecode": np.asarray(codes)[c]})
    explained = cells.join(odd, on=["person_id", "phecode"], how="semi").height
    case_vs_excl = int(((theirs == 1) & (mine == -1)).sum())
    print(json.dumps({
        "bench": "build_cohort_vs_phetk", "persons_compared": int(len(persons)),
        "phecodes": len(codes), "cells": n_cells,
        "agreement": round(1 - differ.sum() / n_cells, 6), "cells_differing": int(differ.sum()),
        "differing_phetk_case_ours_excluded": case_vs_excl,
        "differing_explained_by_count_rule": explained,
        "cells_phetk_rows_ge_min_but_days_lt_min": odd.height,
        "phetk": phetk, "phetk_same_allocator_setting": phetk_alloc,
        "ours_codes_all": ours["all"], "ours_codes_visit": ours["visit"],
        "speedup_codes_all": round(phetk["wall_s"] / ours["all"]["wall_s"], 2),
        "speedup_codes_visit": round(phetk["wall_s"] / ours["visit"]["wall_s"], 2),
        "memory_ratio_codes_all": round(ours["all"]["peak_rss_gb"] / phetk["peak_rss_gb"], 2),
        "memory_ratio_codes_visit": round(ours["visit"]["peak_rss_gb"] / phetk["peak_rss_gb"], 2),
        "memory_ratio_codes_visit_vs_phetk_same_allocator": round(
            ours["visit"]["peak_rss_gb"] / phetk_alloc["peak_rss_gb"], 2),
        "cores": os.cpu_count(), "command": "python bench/bench_phetk.py",
    }))


if __name__ == "__main__":
    main()
