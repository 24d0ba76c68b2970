"""Benchmark: ``phewas probe`` on real public recordings, as their publishers ship them.

Converts and probes, with random weights (AnyPPG's architecture), the pulse features and the
constant reference (training mean or prevalence): BUT PPG 1.0.0 (quality, heart rate, age),
TROIKA (heart rate), the Liu et al. 2022 arrhythmia subset (atrial fibrillation, six rhythms;
written in the probe's ``windows.npy`` format) from ``../shared/data``, and, when ``--gyro`` names
a folder of ``Subject_<k>.mat`` files (GitHub ``hooseok/gyro_acc_ppg``), Gyro-Acc-PPG (heart
rate). ``evaluations``: each dataset by one split, repeated splits and leave-one-subject-out,
with the paired differences between encoders; ``conventions``: TROIKA and the arrhythmias by the
paper's single split under both input conventions and both protocols. Each metric with its 95%
interval (what it is: ``probe.csv``'s ``interval``).

    python bench/bench_real_probes.py [--gyro DIR] [--what evaluations|conventions|all]

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


def run(name: str, dataset: Path, out: Path, result: dict, reuse: bool = False, **settings) -> None:
    """Probe ``dataset`` with random weights, the pulse features and the constant; record each
    task's main metric (and Pearson r) as ``value (low-high)`` under ``name``, and the paired
    differences of the main metric."""
    from reports.probe import ProbeConfig, probe
    t = time.perf_counter()
    if reuse and (out / "summary.json").exists():  # a finished probe of an interrupted run
        summary = json.loads((out / "summary.json").read_text())
        result[f"{name}_probe_s"] = "reused"
    else:
        summary = probe(dataset, ["random", "features"], out, config=ProbeConfig(paper="none", **settings),
                        overwrite=True)
        result[f"{name}_probe_s"] = round(time.perf_counter() - t, 1)
    result[f"{name}_examples"] = f"{summary['examples']} ({summary['subjects']} subjects; {summary['split']})"
    table = pl.read_csv(out / "probe.csv")
    for r in table.filter(pl.col("value").is_not_null()).iter_rows(named=True):
        if r["metric"] == MAIN[r["kind"]] or r["metric"] == "pearson_r":
            ci = (f" ({r['ci_low']:.3f}-{r['ci_high']:.3f})" if r["ci_low"] is not None and r["ci_low"] == r["ci_low"]
                  else " (no interval)")
            result[f"{name}/{r['task']}/{r['encoder']}/{r['metric']}"] = f"{r['value']:.3f}{ci}"
    for r in pl.read_csv(out / "probe_pairs.csv").iter_rows(named=True):
        ci = f"{r['ci_low']:.3f} to {r['ci_high']:.3f}" if r["ci_low"] is not None and r["ci_low"] == r["ci_low"] \
            else "no interval"
        result[f"{name}/{r['task']}/{r['encoder_a']}-{r['encoder_b']}"] = f"{r['difference']:.3f} ({ci})"
    folds = pl.read_csv(out / "probe_folds.csv")
    if settings.get("evaluation") == "loso" and folds.height:  # per subject: features against the constant
        for task in folds["task"].unique().to_list():
            kind = summary["tasks"][task]
            metric = MAIN[kind]
            per = folds.filter((pl.col("task") == task) & (pl.col("metric") == metric)).pivot(
                "encoder", index="fold", values="value")
            if {"features", "constant"} <= set(per.columns):
                better = (per["features"] < per["constant"]) if metric == "mae" else (per["features"] > per["constant"])
                result[f"{name}/{task}/features_beats_constant_in_subjects"] = f"{int(better.sum())} of {per.height}"


def main():
    from cohorts.converters import convert_dataset
    ap = argparse.ArgumentParser()
    ap.add_argument("--gyro", type=Path, default=None, help="folder of Gyro-Acc-PPG's Subject_<k>.mat files")
    ap.add_argument("--out", type=Path, default=Path("bench/out/real_probes"))
    ap.add_argument("--what", choices=("evaluations", "conventions", "all"), default="all")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--reuse", action="store_true", help="read the probes already finished in --out again")
    ap.add_argument("--skip", default="", help="runs left out, as NAME/EVALUATION,... (e.g. liu2022/loso)")
    a = ap.parse_args()
    result = {"bench": "real_probes"}
    data = {}
    for fmt, source in (("but-ppg", SHARED / "but_ppg_1.0.0"), ("troika", SHARED / "troika")):
        m = convert_dataset(fmt, source, a.out / fmt, overwrite=True)
        result[f"{fmt}_converted"] = m["counts"]
        data[fmt] = a.out / fmt
    data["liu2022"] = liu_dataset(a.out / "liu2022")
    if a.gyro:
        m = convert_dataset("gyro-acc-ppg", a.gyro, a.out / "gyro-acc-ppg", overwrite=True)
        result["gyro-acc-ppg_converted"] = m["counts"]
        data["gyro-acc-ppg"] = a.out / "gyro-acc-ppg"
    if a.what in ("evaluations", "all"):  # few subjects: one split, repeated splits, each subject left out
        for name in ("troika", "but-ppg", "liu2022", *(["gyro-acc-ppg"] if a.gyro else [])):
            for evaluation in ("split", "repeated", "loso"):
                if f"{name}/{evaluation}" in a.skip.split(","):
                    continue
                # the six-rhythm forest refitted 250 times per encoder is hours on two cores: AF only
                only = {"task": "af"} if name == "liu2022" and evaluation != "split" else {}
                run(f"{name}/{evaluation}", data[name], a.out / f"{name}-{evaluation}", result, a.reuse,
                    evaluation=evaluation, workers=a.workers, **only)
    if a.what in ("conventions", "all"):  # the release's input and protocol against this toolkit's
        for name in ("troika", "liu2022"):
            for inp in ("windows", "anyppg"):
                for protocol in ("grouped", "anyppg"):
                    only = {"task": "af"} if name == "liu2022" else {}  # the six-rhythm forest: hours
                    run(f"{name}/input-{inp}/protocol-{protocol}", data[name],
                        a.out / f"{name}-{inp}-{protocol}", result, a.reuse, input=inp, protocol=protocol,
                        evaluation="split", workers=a.workers, **only)
    result |= {"cores": os.cpu_count(), "command": "python bench/bench_real_probes.py" +
               (" --gyro DIR" if a.gyro else "") + (f" --what {a.what}" if a.what != "all" else "")
               + (f" --workers {a.workers}" if a.workers else "") + (" --reuse" if a.reuse else "")
               + (f" --skip {a.skip}" if a.skip else "")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
