"""Benchmark: PPG windows per second from a warm segment store into torch tensors.

    python bench/bench_loader.py [--stays 5000] [--workers 2]

Compares, in the same run, (a) ``encoder.data.StayWindows`` through a DataLoader (batched
``__getitems__`` reads from the float16 memmap, ``pin_memory`` when an accelerator exists) with
(b) a plain loop that ``np.load``s one window file at a time. Target: >= 20,000 windows/s
on 2 cores. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from cohorts.store import SegmentStore
from encoder.data import StayWindows, loader
from phewas.base.io import write_manifest


def fake_store(path: Path, stays: int, per_stay: int = 20) -> SegmentStore:
    rng = np.random.default_rng(0)
    n = stays * per_stay
    arr = np.lib.format.open_memmap(path / "ppg.npy", mode="w+", dtype=np.float16, shape=(n, 1250))
    for a in range(0, n, 20000):
        arr[a:a + 20000] = rng.standard_normal((min(20000, n - a), 1250)).astype(np.float16)
    arr.flush()
    ids = [f"{10_000_000 + i}" for i in range(stays)]
    pl.DataFrame({"row": np.arange(n, dtype=np.uint32), "stay_id": np.repeat(ids, per_stay),
                  "split": "pretrain_train", "window": np.tile(np.arange(per_stay), stays)}
                 ).write_parquet(path / "ppg_index.parquet")
    pl.DataFrame({"stay_id": ids, "split": "pretrain_train", "n_ppg_windows": per_stay,
                  "n_candidates": per_stay, "n_pairs": 0}).write_parquet(path / "stays.parquet")
    np.save(path / "pairs_ppg.npy", np.zeros((0, 1250), np.float16))
    np.save(path / "pairs_ecg.npy", np.zeros((0, 5000), np.float16))
    pl.DataFrame({"row": [], "stay_id": [], "split": []},
                 schema={"row": pl.UInt32, "stay_id": pl.String, "split": pl.String}).write_parquet(
        path / "pairs_index.parquet")
    write_manifest(path, command="bench", inputs={}, parameters={})
    return SegmentStore(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-stays", type=int, default=32)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as d:
        d = Path(d)
        store = fake_store(d, a.stays)
        ds = StayWindows(store, None, [], ["pretrain_train"], windows=20)
        pin = torch.cuda.is_available()
        dl = loader(ds, a.batch_stays, shuffle=True, workers=a.workers, pin_memory=pin)
        for _ in zip(range(3), dl):  # warm: page cache and worker start
            pass
        t = time.perf_counter()
        n = 0
        for _ in range(2):
            for _, x, _, _, _ in dl:
                n += x.shape[0] * x.shape[1]
        fast = n / (time.perf_counter() - t)
        # baseline: one .npy file per window, loaded one at a time
        files = d / "windows"
        files.mkdir()
        k = 4000
        src = np.asarray(store.ppg_array[:k])
        for i in range(k):
            np.save(files / f"{i}.npy", src[i])
        for i in range(200):
            np.load(files / f"{i}.npy")
        t = time.perf_counter()
        batch = []
        for i in np.random.default_rng(0).permutation(k):
            batch.append(torch.from_numpy(np.load(files / f"{i}.npy").astype(np.float32)))
        slow = k / (time.perf_counter() - t)
    print(json.dumps({"bench": "loader", "windows_per_s": round(fast),
                      "baseline_np_load_per_window_per_s": round(slow),
                      "ratio": round(fast / slow, 1), "workers": a.workers,
                      "batch": f"{a.batch_stays} stays x 20 windows",
                      "pinned": pin, "store_windows": a.stays * 20, "cores": os.cpu_count(),
                      "command": f"python bench/bench_loader.py --stays {a.stays} --workers {a.workers}"}))


if __name__ == "__main__":
    main()
