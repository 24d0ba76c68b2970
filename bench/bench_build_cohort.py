"""Benchmark: ``phewas build-cohort`` on MC-MED-scale tables (118,000 visits, 70,000 patients,
2,000,000 history rows) with fake WFDB headers (headers only: build-cohort never reads signals).

    python bench/bench_build_cohort.py [--out bench/out/mcmed_scale]

Prints one JSON line: wall seconds and peak resident memory of the build-cohort process.
Targets: under 60 s and under 4 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from cohorts.phecodes import map_path


def make_tables(out: Path, visits=118_000, patients=70_000, history=2_000_000, seed=0):
    rng = np.random.default_rng(seed)
    raw = pl.read_csv(map_path(), infer_schema_length=0).select("ICD", "flag").unique()
    icd10 = raw.filter(pl.col("flag") == "10")["ICD"].to_numpy()
    icd9 = raw.filter(pl.col("flag") == "9")["ICD"].to_numpy()
    mrn = np.arange(1_000_000, 1_000_000 + patients)
    pat = np.concatenate([mrn, rng.choice(mrn, visits - patients)])
    rng.shuffle(pat)
    csn = np.arange(10_000_000, 10_000_000 + visits)
    base = rng.integers(5_000_000_000, 10_000_000_000, patients)  # seconds: years 2128-2286
    arrival = base[pat - 1_000_000] + rng.integers(0, 3 * 365 * 86400, visits)

    def iso(s):
        return np.char.add(np.datetime_as_string(s.astype("datetime64[s]"), unit="s"), "Z")
    pl.DataFrame({
        "MRN": pat.astype(str), "CSN": csn.astype(str), "Age": rng.integers(18, 91, visits),
        "Gender": rng.choice(["F", "M", "U"], visits, p=[0.53, 0.465, 0.005]),
        "Arrival_time": iso(arrival),
        "Dx_ICD9": rng.choice(icd9, visits), "Dx_ICD10": rng.choice(icd10, visits),
    }).write_csv(out / "visits.csv")
    hp = rng.choice(mrn, history)
    is9 = rng.random(history) < 0.2
    code = np.where(is9, rng.choice(icd9, history), rng.choice(icd10, history))
    noted = base[hp - 1_000_000] + rng.integers(-5 * 365 * 86400, 3 * 365 * 86400, history)
    pl.DataFrame({"MRN": hp.astype(str), "Noted_date": iso(noted),
                  "CodeType": np.where(is9, "Dx9", "Dx10"),
                  "Code": np.char.replace(code.astype(str), ".", "")}).write_csv(out / "pmh.csv")
    # headers: 71% of visits have PPG, half of those an overlapping ECG record
    wf = out / "waveforms"
    for i in np.flatnonzero(rng.random(visits) < 0.71):
        c = str(csn[i])
        t = np.datetime64(int(arrival[i]) + 1800, "s").astype(object)
        stamp = f"{t:%H:%M:%S} {t.day:02d}/{t.month:02d}/{t.year}"
        chans = [("Pleth", 125, 30000)] + ([("II", 500, 120000)] if rng.random() < 0.5 else [])
        for chan, fs, n in chans:
            d = wf / f"{csn[i] % 1000:03d}" / c / chan
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{c}_1.hea").write_text(f"{c}_1 1 {fs} {n} {stamp}\n{c}_1.dat 16 1000/NU 16 0 0 0 0 {chan}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/out/mcmed_scale"))
    a = ap.parse_args()
    data = a.out / "data"
    if not (data / "pmh.csv").exists():
        data.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        make_tables(data)
        print(f"# generated tables and headers in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    cohort = a.out / "cohort"
    cmd = [sys.executable, "-m", "phewas.cli", "build-cohort", "--data", str(data), "--out", str(cohort),
           "--force", "--quiet"]
    t = time.perf_counter()
    # as from a shell: importing polars here set _RJEM_MALLOC_CONF, which phewas.cli would inherit
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    man = json.loads((cohort / "manifest.json").read_text())
    print(json.dumps({"bench": "build_cohort", "visits": man["counts"]["visits"],
                      "patients": man["counts"]["patients"], "history_rows": 2_000_000,
                      "headers": man["inputs"]["waveforms"]["headers"], "wall_s": round(wall, 1),
                      "peak_rss_gb": round(peak_kb / 1e6, 2), "cores": os.cpu_count(),
                      "command": " ".join(["python"] + cmd[1:])}))


if __name__ == "__main__":
    main()
