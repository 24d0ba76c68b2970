"""Benchmark: ``phewas probe`` on real public recordings, as their publishers ship them.

Converts and probes, with random weights (AnyPPG's architecture), the pulse features and the
constant reference (training mean or prevalence): BUT PPG 1.0.0 (quality, heart rate, age),
TROIKA (heart rate), the Liu et al. 2022 arrhythmia subset (atrial fibrillation, six rhythms;
written in the probe's ``windows.npy`` format) from ``../shared/data``, and, when ``--gyro`` names
a folder of ``Subject_<k>.mat`` files (GitHub ``hooseok/gyro_acc_ppg``), Gyro-Acc-PPG (heart
rate). Each metric with its 95% bootstrap interval over test subjects (1,000 resamples).

    python bench/bench_real_probes.py [--gyro DIR]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MAIN = {"regression": "mae", "binary": "auc", "multiclass": "auc"}


def liu_dataset(out: Path) -> Path:
    z = np.load(SHARED / "liu2022_arrhythmia" / "liu2022_subset.npz")
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "windows.npy", z["windows"].astype(np.float32) / 32000)
    names = ["sinus", "PVC", "PAC", "VT", "SVT", "AF"]
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["window", "subject", "af", "rhythm"])
        for i, (label, subject) in enumerate(zip(z["labels"], z["subject"])):
            w.writerow([i, subject, int(label == 5), names[label]])
    (out / "dataset.toml").write_text('name = "liu2022"\nfs = 100\n[tasks.af]\nkind = "binary"\n'
                                      '[tasks.rhythm]\nkind = "multiclass"\n')
    return out


def run(name: str, dataset: Path, out: Path, result: dict) -> None:
    from reports.probe import ProbeConfig, probe
    t = time.perf_counter()
    summary = probe(dataset, ["random", "features"], out, config=ProbeConfig(), overwrite=True)
    result[f"{name}_probe_s"] = round(time.perf_counter() - t, 1)
    result[f"{name}_examples"] = f"{summary['examples']} ({summary['test_examples']} test; split {summary['split']})"
    table = pl.read_csv(out / "probe.csv")
    for r in table.filter(pl.col("value").is_not_null()).iter_rows(named=True):
        if r["metric"] == MAIN[r["kind"]] or r["metric"] == "pearson_r":
            result[f"{name}/{r['task']}/{r['encoder']}/{r['metric']}"] = \
                f"{r['value']:.3f} ({r['ci_low']:.3f}-{r['ci_high']:.3f})"


def main():
    from cohorts.converters import convert_dataset
    ap = argparse.ArgumentParser()
    ap.add_argument("--gyro", type=Path, default=None, help="folder of Gyro-Acc-PPG's Subject_<k>.mat files")
    ap.add_argument("--out", type=Path, default=Path("bench/out/real_probes"))
    a = ap.parse_args()
    result = {"bench": "real_probes"}
    for fmt, source in (("but-ppg", SHARED / "but_ppg_1.0.0"), ("troika", SHARED / "troika")):
        m = convert_dataset(fmt, source, a.out / fmt, overwrite=True)
        result[f"{fmt}_converted"] = m["counts"]
        run(fmt, a.out / fmt, a.out / f"{fmt}-probe", result)
    run("liu2022", liu_dataset(a.out / "liu2022"), a.out / "liu2022-probe", result)
    if a.gyro:
        m = convert_dataset("gyro-acc-ppg", a.gyro, a.out / "gyro-acc-ppg", overwrite=True)
        result["gyro-acc-ppg_converted"] = m["counts"]
        run("gyro-acc-ppg", a.out / "gyro-acc-ppg", a.out / "gyro-acc-ppg-probe", result)
    result |= {"cores": os.cpu_count(), "command": "python bench/bench_real_probes.py" +
               (" --gyro DIR" if a.gyro else "")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
