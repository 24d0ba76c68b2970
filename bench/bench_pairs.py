"""Benchmark: ``extract-pairs`` on overnight polysomnograms, against the AnyPPG release's own
extractor and processor on the same files in the same run.

    python bench/bench_pairs.py [--nights 2] [--hours 10] \\
        [--release ANYPPG_CHECKOUT --release-python RELEASE_VENV/bin/python]

Writes ``--nights`` MESA-layout EDFs of ``--hours`` each (``EKG`` and ``Pleth`` at 256 Hz with
EEG, EOG, respiratory, position and oximetry channels beside them, as MESA's montage has them):
the real ECG II and PLETH of PhysioNet 2015 records (``../shared/data/physionet2015``) looped to
fill the night. Then, each in a fresh process on one core:

* ``extract-pairs --format mesa`` (one worker): pairs per second and peak memory (max RSS);
* with ``--release``: the release's ``MESAExtractor.read_edf`` (pyedflib, the whole night into an
  ``.npz``) and ``MESAProcessor.process_individual_data`` on each night: pairs per second, peak
  memory, and the pairs kept (both must keep the same number).

Prints one JSON line. Targets: at least 5x the release's pairs per second per core, at most 1 GB
per worker on a 10-h night.
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
SHARED = ROOT.parent / "shared" / "data"

OURS = r'''
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from phewas.base.progress import set_quiet
from cohorts.corpus import extract_pairs
def hwm():  # this process's own peak (ru_maxrss would count the parent's memory at the fork)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
set_quiet(True)
t = time.perf_counter()
m = extract_pairs("mesa", Path(sys.argv[2]), Path(sys.argv[3]), workers=int(sys.argv[4]), overwrite=True)
s = time.perf_counter() - t
print(json.dumps({"pairs": m["counts"]["pairs"], "seconds": s, "windows": m["counts"]["windows"],
                  "max_rss_mb": hwm(),
                  "max_rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
'''

RELEASE = r'''
import importlib.util, json, resource, sys, time, types
from pathlib import Path
sys.modules.setdefault("biobss", types.ModuleType("biobss"))  # only its PPG quality check, off
ic = types.ModuleType("icecream"); ic.ic = lambda *a, **k: None; sys.modules.setdefault("icecream", ic)
release, nights, work = Path(sys.argv[1]), sorted(Path(sys.argv[2]).glob("*.edf")), Path(sys.argv[3])
def hwm():  # this process's own peak (ru_maxrss would count the parent's memory at the fork)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return mod
ex = load("ex", release / "preprocessing/mesa/data_extractor.py")
pr = load("pr", release / "preprocessing/mesa/data_processor.py")
E = ex.MESAExtractor(str(nights[0].parent), str(work / "npz"), {"EKG": "ECG", "Pleth": "PPG"})
P = pr.MESAProcessor(str(work / "npz"), 10, 0, str(work / "out"), log_dir=str(work / "logs"), num_workers=1)
t = time.perf_counter(); pairs = 0; extract_s = 0.0
for night in nights:
    a = time.perf_counter()
    E.process_file(night, ["EKG", "Pleth"])
    extract_s += time.perf_counter() - a
    out = P.process_individual_data(str(work / "npz" / f"{night.stem}.npz"))
    pairs += 0 if out[0] is None or isinstance(out[1], str) else len(out[0])
print(json.dumps({"pairs": pairs, "seconds": time.perf_counter() - t, "extract_seconds": extract_s,
                  "max_rss_mb": hwm()}))
'''


def real(name: str):
    import wfdb
    rec = wfdb.rdrecord(str(SHARED / "physionet2015" / name))
    names = list(rec.sig_name)
    x = rec.p_signal.copy()
    for j in range(x.shape[1]):
        bad = np.isnan(x[:, j])
        x[bad, j] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), x[~bad, j])
    return x[:, names.index("II")], x[:, names.index("PLETH")], float(rec.fs)


def night(path: Path, record: str, hours: float, seed: int) -> None:
    """A MESA-layout night: the record's ECG and PLETH at 256 Hz, looped to ``hours``."""
    from helpers import at_rate, write_edf
    ecg, ppg, fs = real(record)
    secs = int(hours * 3600)
    loop = int(len(ecg) // fs)
    e = np.resize(at_rate(ecg[:int(loop * fs)], fs, 256), secs * 256)
    p = np.resize(at_rate(ppg[:int(loop * fs)], fs, 256), secs * 256)
    rng = np.random.default_rng(seed)
    write_edf(path, [("EKG", e, 256, "mV"), ("EOG-L", rng.normal(size=secs * 256), 256, "uV"),
                     ("EEG1", rng.normal(size=secs * 256), 256, "uV"), ("Flow", rng.normal(size=secs * 32), 32, ""),
                     ("Thor", rng.normal(size=secs * 32), 32, ""), ("Abdo", rng.normal(size=secs * 32), 32, ""),
                     ("Pos", np.ones(secs * 32), 32, ""), ("Pleth", p, 256, ""), ("SpO2", np.full(secs, 97.0), 1, "%"),
                     ("HR", np.full(secs, 80.0), 1, "bpm"), ("OxStatus", np.zeros(secs), 1, "")])


def run(python: str, code: str, *args) -> dict:
    one_core = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run([python, "-c", code, *map(str, args)], capture_output=True, text=True,
                         env={**os.environ, **one_core})
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nights", type=int, default=2)
    ap.add_argument("--hours", type=float, default=10.0)
    ap.add_argument("--release", type=Path, help="a working tree of PKUDigitalHealth/AnyPPG")
    ap.add_argument("--release-python", default=None, help="a Python with the release's dependencies and pyedflib")
    a = ap.parse_args()
    out = {"bench": "pairs", "nights": a.nights, "hours_per_night": a.hours}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        edfs = d / "mesa" / "polysomnography" / "edfs"
        t = time.perf_counter()
        for k in range(a.nights):
            night(edfs / f"mesa-sleep-{k + 1:04d}.edf", ("a103l", "v102s")[k % 2], a.hours, k)
        out["write_edf_s"] = round(time.perf_counter() - t, 1)
        out["edf_mb_per_night"] = round(sum(p.stat().st_size for p in edfs.glob("*.edf")) / a.nights / 2 ** 20, 1)
        ours = run(sys.executable, OURS, ROOT, d / "mesa", d / "store", 1)
        out |= {"pairs": ours["pairs"], "windows": ours["windows"], "seconds_one_core": round(ours["seconds"], 1),
                "pairs_per_s_per_core": round(ours["pairs"] / ours["seconds"], 1),
                "peak_rss_mb_per_worker": round(max(ours["max_rss_mb"], ours["max_rss_children_mb"]))}
        if a.nights >= 2 and (os.cpu_count() or 1) >= 2:
            two = run(sys.executable, OURS, ROOT, d / "mesa", d / "store2", 2)
            out |= {"seconds_two_workers": round(two["seconds"], 1),
                    "peak_rss_mb_per_worker_of_two": round(two["max_rss_children_mb"])}
        if a.release:
            theirs = run(a.release_python or sys.executable, RELEASE, a.release, edfs, d / "release")
            out |= {"release_pairs": theirs["pairs"], "release_seconds_one_core": round(theirs["seconds"], 1),
                    "release_extract_seconds": round(theirs["extract_seconds"], 1),
                    "release_pairs_per_s_per_core": round(theirs["pairs"] / theirs["seconds"], 1),
                    "release_peak_rss_mb": round(theirs["max_rss_mb"]),
                    "speedup_vs_release": round((ours["pairs"] / ours["seconds"]) /
                                                (theirs["pairs"] / theirs["seconds"]), 1)}
    out |= {"cores": os.cpu_count(), "command": f"python bench/bench_pairs.py --nights {a.nights} --hours {a.hours:g}"
            + (" --release ANYPPG_CHECKOUT --release-python RELEASE_VENV/bin/python" if a.release else "")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
