"""Benchmark: ``phewas simulate`` of a 2,000-patient dataset (target: under 3 minutes on 2 cores).

    python bench/bench_simulate.py [--patients 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=2000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "mcmed"
        cmd = [sys.executable, "-m", "phewas.cli", "simulate", "--out", str(out), "--patients", str(a.patients),
               "--quiet"]
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t
        man = json.loads((out / "manifest.json").read_text())["counts"]
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(json.dumps({"bench": "simulate", "patients": a.patients, "visits": man["visits"],
                      "visits_with_waveforms": man["visits_with_waveforms"], "records": man["records"],
                      "wall_s": round(wall, 1), "disk_mb": round(size / 1e6), "cores": os.cpu_count(),
                      "command": f"phewas simulate --out DIR --patients {a.patients}"}))


if __name__ == "__main__":
    main()
