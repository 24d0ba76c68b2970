"""Benchmark: ``extract-segments`` stays per second per core on simulated data, with a profile.

    python bench/bench_extract.py [--patients 150] [--minutes 4]

Simulates a dataset, builds its cohort, then times extraction with 1 and 2 worker processes (same
run) and profiles a single-process pass over 40 stays. Prints one JSON line and the profile's top
entries (cumulative time) on stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cohorts import CohortConfig, SegmentConfig, build_cohort, extract_segments
from cohorts.segments import _jobs, process_stay
from cohorts.sim import PopulationConfig, simulate_dataset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=150)
    ap.add_argument("--minutes", type=float, default=4.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        simulate_dataset(d / "data", PopulationConfig(patients=a.patients, seed=1, minutes=a.minutes))
        build_cohort(d / "data", d / "cohort", CohortConfig())
        rates = {}
        for workers in (1, 2):
            shutil.rmtree(d / "cohort" / "segments", ignore_errors=True)
            t = time.perf_counter()
            m = extract_segments(d / "data", d / "cohort", SegmentConfig(), workers=workers)
            rates[workers] = m["counts"]["stays"] / (time.perf_counter() - t)
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
            area = ("wfdb read" if "wfdb" in file else "scipy filters/resampling" if "scipy" in file
                    else "preprocess (numpy)" if "preprocess" in file or "numpy" in file or file == "~"
                    else "other")
            by_area[area] = by_area.get(area, 0.0) + v[2]
        profile = {k: f"{100 * v / total:.0f}%" for k, v in sorted(by_area.items(), key=lambda kv: -kv[1])}
        c = m["counts"]
    print(json.dumps({"bench": "extract_segments", "stays": c["stays"], "ppg_windows": c["ppg_windows"],
                      "pairs": c["pairs"], "minutes_per_visit": a.minutes,
                      "stays_per_s_1_worker": round(rates[1], 1), "stays_per_s_2_workers": round(rates[2], 1),
                      "stays_per_s_per_core": round(rates[2] / 2, 1), "cores": os.cpu_count(),
                      "profile_share_of_time_1_process_40_stays": profile,
                      "command": f"python bench/bench_extract.py --patients {a.patients} --minutes {a.minutes}"}))


if __name__ == "__main__":
    main()
