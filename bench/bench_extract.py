"""Benchmark: ``extract-segments`` stays per second per core on simulated data, and the ``anyppg``
profile against the AnyPPG release's own processor on the same records in the same run.

    python bench/bench_extract.py [--patients 150] [--minutes 4] \\
        [--release ANYPPG_CHECKOUT --release-python /tmp/release/bin/python]

Simulates a dataset and builds its cohort; times extraction with each profile with 1 and 2
worker processes, and profiles a single-process pass over 40 stays. With ``--release`` (a working
tree of PKUDigitalHealth/AnyPPG and a throwaway environment's Python with ``mne neurokit2 wfdb
pandas scipy``: see ``tests/fixtures/anyppg_release/make_fixtures.py``), every Pleth-II overlap of
the pretraining stays is written in the release extractor's ``.npz`` format and processed, one
process each, by the release's ``MCMEDProcessor.process_individual_data`` and by this profile's
:func:`~cohorts.profiles.anyppg.pair_windows`: pairs per second per core, and the pairs kept by
both (they must agree). Prints one JSON line and the profile's top entries on stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cohorts import CohortConfig, SegmentConfig, build_cohort, extract_segments
from cohorts.profiles import anyppg
from cohorts.segments import _jobs, _read, process_stay
from cohorts.sim import PopulationConfig, simulate_dataset

RELEASE_RUNNER = r'''
import sys, time, types, importlib.util
from pathlib import Path
sys.modules.setdefault("biobss", types.ModuleType("biobss"))  # only its PPG quality check, off
release, folder = Path(sys.argv[1]), Path(sys.argv[2])
spec = importlib.util.spec_from_file_location("proc", release / "preprocessing/mc_med/data_processor.py")
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
P = mod.MCMEDProcessor(str(folder), 10, 0, str(folder / "out"), log_dir=str(folder / "logs"), num_workers=1)
files = sorted(folder.glob("*.npz"))
t = time.perf_counter(); pairs = 0
for f in files:
    out = P.process_individual_data(str(f))
    pairs += 0 if out[0] is None else len(out[0])
print(pairs, time.perf_counter() - t)
'''


def overlaps(data: Path, cohort: Path, limit: int):
    """Every Pleth-II overlap of the pretraining stays: ``(ppg, ecg, fs_ppg, fs_ecg)``, the release
    extractor's spans (``round(seconds * fs)``)."""
    out = []
    for job in _jobs(cohort, (0, 1)):
        if not job["pairs"]:
            continue
        recs = [(r, *_read(str(data / "waveforms" / r["record"]), r["n_samples"])) for r in job["records"]
                if r["start_us"] is not None]
        for er, ex, efs in (r for r in recs if r[0]["channel"] == "ecg"):
            for pr, px, pfs in (r for r in recs if r[0]["channel"] == "ppg"):
                lo = max(pr["start_us"], er["start_us"])
                hi = min(pr["start_us"] + len(px) / pfs * 1e6, er["start_us"] + len(ex) / efs * 1e6)
                if hi - lo < 10e6:
                    continue
                cut = [x[int(round((lo - r["start_us"]) / 1e6 * fs)):int(round((hi - r["start_us"]) / 1e6 * fs))]
                       for r, x, fs in ((pr, px, pfs), (er, ex, efs))]
                out.append((cut[0].astype(np.float32), cut[1].astype(np.float32), pfs, efs))
        if len(out) >= limit:
            break
    return out[:limit]


def release_comparison(spans, release: Path, python: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for k, (p, e, pfs, efs) in enumerate(spans):
            np.savez(d / f"{k:05d}.npz", PPG=np.array([p], dtype=object), ECG=np.array([e], dtype=object),
                     PPG_metadata=np.array([{"sr": int(pfs)}], dtype=object),
                     ECG_metadata=np.array([{"sr": int(efs)}], dtype=object))
        res = subprocess.run([python, "-c", RELEASE_RUNNER, str(release), str(d)], capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        theirs, their_s = res.stdout.split()
    t = time.perf_counter()
    ours = sum(len(anyppg.pair_windows(p, pfs, e, efs).index) for p, e, pfs, efs in spans)
    our_s = time.perf_counter() - t
    return {"overlaps": len(spans), "pairs_release": int(theirs), "pairs_anyppg_profile": ours,
            "release_pairs_per_s_per_core": round(int(theirs) / float(their_s), 1),
            "anyppg_pairs_per_s_per_core": round(ours / our_s, 1),
            "speedup_vs_release": round((ours / our_s) / (int(theirs) / float(their_s)), 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=150)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--release", type=Path, help="a working tree of PKUDigitalHealth/AnyPPG")
    ap.add_argument("--release-python", default=None, help="a Python with the release's dependencies")
    ap.add_argument("--overlaps", type=int, default=60, help="overlaps processed by both (release comparison)")
    a = ap.parse_args()
    out = {"bench": "extract_segments"}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        simulate_dataset(d / "data", PopulationConfig(patients=a.patients, seed=1, minutes=a.minutes))
        build_cohort(d / "data", d / "cohort", CohortConfig())
        for profile in ("anyppg", "robust"):
            rates = {}
            for workers in (1, 2):
                shutil.rmtree(d / "cohort" / "segments", ignore_errors=True)
                t = time.perf_counter()
                m = extract_segments(d / "data", d / "cohort", SegmentConfig(preprocess=profile), workers=workers)
                rates[workers] = (m["counts"]["stays"] / (time.perf_counter() - t),
                                  m["counts"]["pairs"] / (time.perf_counter() - t))
            c = m["counts"]
            out |= {f"{profile}_stays": c["stays"], f"{profile}_ppg_windows": c["ppg_windows"],
                    f"{profile}_pairs": c["pairs"], f"{profile}_stays_per_s_1_worker": round(rates[1][0], 1),
                    f"{profile}_stays_per_s_2_workers": round(rates[2][0], 1),
                    f"{profile}_stays_per_s_per_core": round(rates[2][0] / 2, 1)}
        jobs = _jobs(d / "cohort", (0, 1))[:40]
        prof = cProfile.Profile()
        prof.enable()
        for j in jobs:
            process_stay(j, str(d / "data" / "waveforms"), SegmentConfig())
        prof.disable()
        s = io.StringIO()
        stats = pstats.Stats(prof, stream=s).sort_stats("tottime")
        stats.print_stats(12)
        print(s.getvalue(), file=sys.stderr)
        total = sum(v[2] for v in stats.stats.values())
        by_area: dict = {}  # own time grouped by where the code lives
        for (file, _, _), v in stats.stats.items():
            area = ("wfdb read" if "wfdb" in file else "neurokit2" if "neurokit" in file
                    else "scipy filters/resampling" if "scipy" in file
                    else "profiles/preprocess (numpy)" if "profiles" in file or "preprocess" in file
                    or "numpy" in file or file == "~" else "other")
            by_area[area] = by_area.get(area, 0.0) + v[2]
        out["anyppg_profile_share_of_time_1_process_40_stays"] = {
            k: f"{100 * v / total:.0f}%" for k, v in sorted(by_area.items(), key=lambda kv: -kv[1])}
        if a.release:
            spans = overlaps(d / "data", d / "cohort", a.overlaps)
            out |= release_comparison(spans, a.release, a.release_python or sys.executable)
    command = f"python bench/bench_extract.py --patients {a.patients} --minutes {a.minutes}"
    if a.release:
        command += " --release ANYPPG_CHECKOUT --release-python RELEASE_VENV/bin/python"
    print(json.dumps(out | {"minutes_per_visit": a.minutes, "cores": os.cpu_count(), "command": command}))


if __name__ == "__main__":
    main()
