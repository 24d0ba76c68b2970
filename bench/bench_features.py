"""Benchmark: pulse features per window (target: at least 2,000 windows/s per core).

    python bench/bench_features.py [--windows 4000]

Windows are simulated records (sinus, AF, heart failure, anaemia, stiff arteries; with motion,
flat stretches and clipping) preprocessed as ``extract-segments`` does, then float16 as the store
keeps them. One process, after a warm-up (neurokit2's import is paid once per process).
Baseline in the same run: neurokit2's beat detection alone on the same windows, the floor of any
feature extraction built on it. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import numpy as np

from cohorts.preprocess import PPG, cut_windows, preprocess_record
from cohorts.sim.signals import Physiology, add_artefacts, beat_train, ppg_signal
from encoder.pulse import FS, find_peaks, windows_features

KINDS = [Physiology(), Physiology(hr=85, af=1.0), Physiology(hr=84, hf=0.8), Physiology(hr=83, anemia=0.7),
         Physiology(stiffness=2.0)]


def simulated_windows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    while sum(len(w) for w in out) < n:
        kind = KINDS[len(out) % len(KINDS)]
        phys = replace(kind, hr=kind.hr + float(rng.uniform(-15, 25)))
        beats, rr = beat_train(120.0, phys, rng)
        x = add_artefacts(ppg_signal(beats, rr, 120.0, phys, rng), FS, rng)
        y, bad, _ = preprocess_record(x, FS, PPG, "ppg")
        w, _, _ = cut_windows(y, bad, PPG, np.arange(0, len(y) - PPG.window, PPG.window))
        out.append(w.astype(np.float16))
    return np.vstack(out)[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=4000)
    a = ap.parse_args()
    w = simulated_windows(a.windows)
    windows_features(w[:20].astype(np.float64))  # warm-up: imports
    t = time.perf_counter()
    f = windows_features(w.astype(np.float64))
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for x in w.astype(np.float64):
        find_peaks(x)
    peaks = time.perf_counter() - t
    print(json.dumps({
        "bench": "features", "windows": len(w), "windows_per_s_one_core": round(len(w) / ours),
        "beat_detection_only_windows_per_s": round(len(w) / peaks),
        "ratio_features_to_detection_time": round(ours / peaks, 2),
        "windows_with_heart_rate": float(np.isfinite(f[:, 0]).mean()), "cores": os.cpu_count(),
        "command": "python bench/bench_features.py",
    }))


if __name__ == "__main__":
    main()
