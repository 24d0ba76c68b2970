"""Benchmark: the preprocessing profiles against the AnyPPG release's processor on real recordings.

    python bench/bench_profiles.py

For each real recording of ``../shared/data`` that ``tests/fixtures/anyppg_release`` holds the
release's output for (PhysioNet 2015 a103l and v102s, PPG and pairs; the 12 TROIKA recordings;
the 48 BUT PPG 1.0.0 records), the windows the release keeps and each profile keeps, the ``anyppg``
profile's RMS and largest difference from the release as the segment store holds it (float16),
and the ``robust`` profile's difference on the windows both keep: correlation, RMS over the window
and over its first and last 0.5 s, sign flips; then the change of the embedding (random weights of
AnyPPG's architecture, seed 0) that each profile's windows give, relative to the release's.
Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from cohorts.preprocess import PPG, cut_windows, preprocess_record  # noqa: E402
from cohorts.profiles import anyppg  # noqa: E402
from encoder.config import anyppg_config  # noqa: E402
from encoder.net1d import Net1D  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FIXTURES = ROOT / "tests" / "fixtures" / "anyppg_release"


def recordings():
    import wfdb
    from scipy.io import loadmat

    from cohorts.converters.but_ppg import read_ppg
    for r in ("a103l", "v102s"):
        rec = wfdb.rdrecord(str(DATA / "physionet2015" / r))
        yield r, rec.p_signal[:, list(rec.sig_name).index("PLETH")], float(rec.fs)
    for path in sorted((DATA / "troika").glob("DATA_*_TYPE*.mat")):
        yield path.stem.lower(), np.asarray(loadmat(path)["sig"][1], np.float64), 125.0
    for hea in sorted((DATA / "but_ppg_1.0.0").glob("*/*_PPG.hea")):
        yield hea.parent.name, read_ppg(hea), 30.0


def robust_windows(x, fs):
    y, bad, _ = preprocess_record(np.asarray(x, np.float64), fs, PPG, "ppg")
    starts = np.arange(0, len(y) - PPG.window + 1, PPG.window)
    w, _, kept = cut_windows(y, bad, PPG, starts, 0.25)
    return w, kept // PPG.window


def embeddings(net, windows):
    with torch.no_grad():
        return net(torch.from_numpy(np.asarray(windows, np.float32))[:, None]).numpy()


def main():
    ref = np.load(FIXTURES / "processor.npz")
    torch.manual_seed(0)
    net = Net1D(anyppg_config()).eval()
    rows = {}
    for name, x, fs in recordings():
        theirs, idx = ref[f"ppg__{name}__ppg"].astype(np.float64), ref[f"ppg__{name}__index"]
        mine = anyppg.ppg_windows(x, fs)
        d = np.asarray(mine.ppg, np.float16).astype(np.float64) - theirs
        rob, rob_idx = robust_windows(x, fs)
        both, a, b = np.intersect1d(rob_idx, idx, return_indices=True)
        edge = int(0.5 * PPG.fs)
        r = {"windows": mine.windows, "kept_release": int(len(idx)), "kept_anyppg": int(len(mine.index)),
             "kept_robust": int(len(rob_idx)), "anyppg_rms": float(np.sqrt(np.mean(d ** 2))) if d.size else 0.0,
             "anyppg_max": float(np.abs(d).max()) if d.size else 0.0}
        if len(both):
            u, v = rob[a].astype(np.float64), theirs[b]
            corr = np.array([np.corrcoef(p, q)[0, 1] for p, q in zip(u, v)])
            diff = u - v
            ends = np.concatenate([diff[:, :edge], diff[:, -edge:]], axis=1)
            e_r, e_t = embeddings(net, u), embeddings(net, v)
            e_a = embeddings(net, mine.ppg[np.isin(mine.index, both)])
            r |= {"robust_median_r": float(np.median(corr)), "robust_flipped": int((corr < -0.5).sum()),
                  "robust_rms_middle": float(np.sqrt(np.mean(diff[:, edge:-edge] ** 2))),
                  "robust_rms_edges": float(np.sqrt(np.mean(ends ** 2))),
                  "embedding_change_robust": float(np.median(np.linalg.norm(e_r - e_t, axis=1)
                                                             / np.linalg.norm(e_t, axis=1))),
                  "embedding_change_anyppg": float(np.median(np.linalg.norm(e_a - e_t, axis=1)
                                                             / np.linalg.norm(e_t, axis=1)))}
        rows[name] = r
    but = [v for k, v in rows.items() if k.isdigit()]
    troika = [v for k, v in rows.items() if k.startswith("data_")]

    def total(group, key):
        return int(sum(v.get(key, 0) for v in group))
    summary = {name: rows[name] for name in ("a103l", "v102s")}
    for label, group in (("troika", troika), ("but_ppg_1.0.0", but)):
        summary[label] = {k: total(group, k) for k in ("windows", "kept_release", "kept_anyppg", "kept_robust",
                                                        "robust_flipped")} | {
            "anyppg_max": max(v["anyppg_max"] for v in group),
            "robust_median_r": float(np.median([v["robust_median_r"] for v in group if "robust_median_r" in v])),
            "robust_rms_edges": float(np.median([v["robust_rms_edges"] for v in group if "robust_rms_edges" in v])),
            "embedding_change_robust": float(np.median([v["embedding_change_robust"] for v in group
                                                        if "embedding_change_robust" in v]))}
    summary["troika_per_recording"] = {k: [v["kept_release"], v["kept_anyppg"], v["kept_robust"]]
                                       for k, v in rows.items() if k.startswith("data_")}
    for name in ("a103l", "v102s"):  # the ECG side of the pairs
        import wfdb

        from cohorts.preprocess import ECG, ChannelSpec
        rec = wfdb.rdrecord(str(DATA / "physionet2015" / name))
        ppg, ecg = (rec.p_signal[:, list(rec.sig_name).index(c)] for c in ("PLETH", "II"))
        theirs, idx = ref[f"pairs__{name}__ecg"].astype(np.float64), ref[f"pairs__{name}__index"]
        mine = anyppg.pair_windows(ppg, rec.fs, ecg, rec.fs)
        spec = ChannelSpec(fs=ECG.fs, band=ECG.band, notch_hz=50.0)
        y, bad, _ = preprocess_record(np.asarray(ecg, np.float64), rec.fs, spec, "ecg")
        w, _, kept = cut_windows(y, bad, spec, np.arange(0, len(y) - spec.window + 1, spec.window), 0.25)
        p_rob, p_idx = robust_windows(ppg, rec.fs)
        rob_pairs = np.intersect1d(kept // spec.window, p_idx)
        both, a, b = np.intersect1d(kept // spec.window, idx, return_indices=True)
        corr = [np.corrcoef(u, v)[0, 1] for u, v in zip(w[a], theirs[b])]
        d = np.asarray(mine.ecg, np.float16).astype(np.float64) - theirs
        summary[f"pairs_{name}"] = {"windows": mine.windows, "kept_release": int(len(idx)),
                                    "kept_anyppg": int(len(mine.index)), "kept_robust": int(len(rob_pairs)),
                                    "release_inverted": bool(ref[f"pairs__{name}__invert_ratio"] > 0.5),
                                    "anyppg_ecg_rms": float(np.sqrt(np.mean(d ** 2))),
                                    "anyppg_ecg_max": float(np.abs(d).max()),
                                    "robust_ecg_median_r": float(np.median(corr))}
    print(json.dumps({"bench": "profiles", **summary, "command": "python bench/bench_profiles.py"}))


if __name__ == "__main__":
    main()
