"""Run every benchmark in one go and rewrite ``bench/RESULTS.md`` (called by ``bench/run_all.sh``).

Each benchmark prints one JSON line; ratios against the peer measured in the same run are part
of each benchmark's output. GPU figures measured on a lent machine are kept from
``bench/gpu_results.json`` when present (they cannot be re-measured on a CPU-only machine).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("simulate", ["bench_simulate.py"], "simulate 2,000 patients (< 3 min)"),
    ("build_cohort", ["bench_build_cohort.py"], "build-cohort at MC-MED scale (< 60 s, < 4 GB)"),
    ("build_cohort_vs_phetk", ["bench_phetk.py"],
     "build-cohort vs PheTK 0.3.6, same MC-MED-scale input, same run "
     "(>= 2.5x faster, peak memory <= PheTK's)"),
    ("extract_segments", ["bench_extract.py"],
     "extraction stays/s per core by profile; the anyppg profile against the AnyPPG release's own processor "
     "on the same overlaps, one process each (>= 5x its pairs/s per core, the same pairs kept; needs "
     "--release and --release-python: recorded with --record)"),
    ("profiles", ["bench_profiles.py"],
     "the preprocessing profiles against the AnyPPG release's processor on real recordings (anyppg: the "
     "same windows kept, RMS <= 1e-3 and max <= 1e-2 z as stored in float16)"),
    ("loader", ["bench_loader.py"], "loader windows/s (>= 20,000) vs per-window np.load"),
    ("encoder", ["bench_encoder.py"], "encoder training throughput vs eager reference; ECG cache"),
    ("finetune", ["bench_finetune.py"], "fine-tuning windows/s"),
    ("auc_delong", ["bench_auc.py"], "AUC + DeLong, 1,500 x 20,000 (< 5 s) vs sklearn loop"),
    ("report_scale", ["bench_report.py"],
     "report at MC-MED scale, 1,500 phecodes x 18,000 stays, everything on, two covariates (< 90 s, < 4 GB)"),
    ("compare_scale", ["bench_compare.py"],
     "compare two models at MC-MED scale, 1,500 phecodes x 18,000 stays (< 1 min)"),
    ("page", ["bench_page.py"],
     "the report and comparison pages at MC-MED scale in headless Chromium: size (< 15 MB), first render "
     "(a few seconds), search, detail view; screenshot bench/report_at_scale.png (reads report_scale's and "
     "compare_scale's pages)"),
    ("auc_intervals", ["bench_auc_intervals.py"],
     "calibration of the AUC and paired-difference intervals: AUC 0.6-0.99 x 20-200 case patients, "
     "returning patients, populations the simulator did not write (coverage 93-97%, median width <= "
     "1.25x, 95th percentile <= 2x the sampling spread)"),
    ("covariates", ["bench_covariates.py"],
     "calibration of the association test on nulls a categorical covariate confounds: adjusted for it "
     "3-7% of p below 0.05, adjusted for age and sex alone far more"),
    ("features", ["bench_features.py"], "pulse features, windows/s on one core (>= 2,000)"),
    ("probe_scale", ["bench_probe_scale.py"],
     "probe fit at real scale: 10,000 x 512 (<= 30 s, <= 1.5x six single lbfgs fits, = GridSearchCV) and "
     "DeepBeat-sized 536,399 x 512 (<= 10 min, <= 4 GB), synthetic embeddings"),
    ("real_probes", ["bench_real_probes.py"],
     "probe on real public recordings: BUT PPG 1.0.0, TROIKA, Liu et al. 2022 arrhythmias (random weights, "
     "pulse features, constant reference)"),
    ("probe_calibration", ["bench_probe_calibration.py", "--replicates", "40", "--sizes", "12,24,6",
                           "--rounds", "300", "--truth-draws", "100",
                           "--variants", "refit_fixed,corrected_t,spread,bootstrap,t"],
     "calibration of the probe's intervals with 6-24 subjects: the 95% interval of each evaluation "
     "against the skill on new people, by simulation (pulse-feature probes; only when named: "
     "`bash bench/run_all.sh probe_calibration`, about 25 minutes)"),
    ("pairs", ["bench_pairs.py", "--nights", "2", "--hours", "10"],
     "extract-pairs on sleep recordings written as EDF: pairs/s per core against the AnyPPG release's "
     "own processors in one process each (>= 5x), peak memory per worker (<= 1 GB); needs --release and "
     "--release-python: recorded with --record"),
    ("probe", ["bench_probe.py"], "probe embedding throughput vs training (CPU); ground truth on "
     "simulated windows (needs demo/pretrain from `make demo`)"),
    ("fdr", ["bench_fdr.py", "--design", "standard", "--seeds", "101-112", "--reanalyse", "--compare-tests"],
     "false discoveries over 12 replicate small studies, standard simulator (about 25 min "
     "the first time; only when named: `bash bench/run_all.sh fdr`)"),
    ("fdr_hard", ["bench_fdr.py", "--design", "hard", "--seeds", "101-112", "--reanalyse"],
     "FDR, calibration, recovery and interval coverage over 12 replicate studies of the "
     "harder simulator (FDR <= 5%, null p < 0.05 in 3-7%, >= 90% recovered, coverage >= 93%; about "
     "an hour the first time; only when named: `bash bench/run_all.sh fdr_hard`)"),
    ("fdr_hard_1600", ["bench_fdr.py", "--design", "hard", "--seeds", "101-106", "--patients", "1600",
                       "--out", "bench/out/fdr-hard-1600", "--reference", "bench/out/fdr-hard/reference"],
     "the same with 1,600 patients per study, 6 replicates (power; reuses fdr_hard's "
     "reference population; only when named)"),
]
SLOW = {"fdr", "fdr_hard", "fdr_hard_1600", "probe_calibration"}  # run only when named


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, no GPU"


def main():
    only = set(sys.argv[1:])
    results = {}
    if sys.argv[1:2] == ["--record"]:  # --record NAME FILE: a benchmark's output, measured here earlier
        name, path = sys.argv[2], Path(sys.argv[3])
        results[name] = json.loads(path.read_text().strip().splitlines()[-1])
        results[name]["measured_on"] = f"{machine()}, {dt.date.fromtimestamp(path.stat().st_mtime).isoformat()}"
        only = {None}  # nothing else to run
    if sys.argv[1:] == ["--rewrite"]:  # RESULTS.md again from results.json, measuring nothing
        only = {None}
    for name, args, _ in BENCHES:
        if (only and name not in only) or (not only and name in SLOW):
            continue
        print(f"# {name}", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], capture_output=True, text=True,
                             check=True, env={**os.environ, "PHEWAS_QUIET": "1"})
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        results[name]["measured_on"] = f"{machine()}, {dt.date.today().isoformat()}"
        print(json.dumps(results[name]), file=sys.stderr)
    old = HERE / "results.json"
    merged = (json.loads(old.read_text()) if old.exists() else {}) | results
    old.write_text(json.dumps(merged, indent=2) + "\n")
    gpu = json.loads((HERE / "gpu_results.json").read_text()) if (HERE / "gpu_results.json").exists() else None
    lines = ["# Benchmark results", "",
             f"Written by `bash bench/run_all.sh` on {dt.date.today().isoformat()}, which re-measures the "
             "benchmarks it is given and keeps the others' last figures; each section names the machine "
             "and date of its own measurement. Every ratio compares two things measured in the same run.", ""]
    for name, _, title in BENCHES:
        r = merged.get(name)
        if r is None:
            continue
        lines += [f"## {title}", "", f"Command: `{r.get('command', '')}`", "",
                  f"Measured on: {r.get('measured_on', 'unknown')}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in r.items() if k not in ("bench", "command", "measured_on")]
        lines.append("")
    lines += ["## GPU", ""]
    if gpu:
        lines += [f"Device: {gpu.get('device')}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in gpu.items() if k != "device"]
    else:
        lines += ["Not measured: no GPU was lent to the sessions that wrote this file. `bash bench/gpu_check.sh` "
                  "on a GPU machine runs the `gpu` tests and measures bf16 and `torch.compile` throughput "
                  "(`bench/gpu_throughput.py`); it writes `bench/gpu_results.json`, which this section shows."]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
