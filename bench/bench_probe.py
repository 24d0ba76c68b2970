"""Benchmark: ``phewas probe``. (1) Embedding throughput of a frozen AnyPPG-size
encoder on the CPU, against that encoder's training throughput (forward + backward, batch 64)
in the same run: embedding is what probing costs. (2) Ground truth and the paper's comparison in
its layout: on the simulated probe dataset (known beat rate and effects; ``phewas
simulate-probe``, 60 subjects x 4 records of 30 s), the ECG-guided pretraining run (CLIP)
against SimCLR and BYOL pretrained here on the same cohort's PPG alone with the same preset and
steps (the ECG-guidance ablation), the random floor of AnyPPG's architecture and of PaPaGei's (an
other family: its released weights are not public offline), the pulse features and the constant
reference. The pretraining run is ``--pretrain`` (default ``demo/pretrain``, from ``make demo``;
its cohort ``--cohort``, default ``demo/cohort``); without it, part (2) is skipped.

    python bench/bench_probe.py [--pretrain demo/pretrain] [--cohort demo/cohort] [--windows 256]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encoder import train_rate  # noqa: E402

from encoder.config import anyppg_config  # noqa: E402
from encoder.embed import embed  # noqa: E402
from encoder.net1d import Net1D  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pretrain", type=Path, default=Path("demo/pretrain"))
    ap.add_argument("--cohort", type=Path, default=Path("demo/cohort"))
    ap.add_argument("--windows", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("bench/out/probe"))
    a = ap.parse_args()
    torch.manual_seed(0)
    model = Net1D(anyppg_config())
    x = np.random.default_rng(0).normal(size=(a.windows, 1250)).astype(np.float32)
    embed(model, x[:64], batch=64, device="cpu")  # warm-up
    t = time.perf_counter()
    embed(model, x, batch=64, device="cpu")
    embed_rate = a.windows / (time.perf_counter() - t)
    train = train_rate(Net1D(anyppg_config()), torch.device("cpu"), 64, 3)
    result = {"bench": "probe", "embed_windows_per_s_anyppg_cpu": round(embed_rate, 1),
              "train_windows_per_s_anyppg_cpu": round(train, 1), "ratio_embed_to_train": round(embed_rate / train, 2),
              "torch_threads": torch.get_num_threads()}
    if (a.pretrain / "ppg_encoder.pth").exists():
        from cohorts.sim.probe import SimulateProbeConfig, simulate_probe_dataset
        from reports.probe import ProbeConfig, probe
        data = a.out / "data"
        simulate_probe_dataset(data, SimulateProbeConfig(subjects=60, seed=0), overwrite=True)
        runs = {"pretrain": a.pretrain}
        if (a.cohort / "segments").exists():  # the ablation: the same pairs and preset, PPG alone
            from encoder.config import pretrain_config
            from encoder.pretrain import pretrain
            demo = json.loads((a.pretrain / "config.json").read_text())
            same = {k: demo[k] for k in ("steps", "batch_size", "lr", "warmup_steps", "seed")}
            for objective in ("simclr", "byol"):
                run = a.out / f"pretrain-{objective}"
                if not (run / "ppg_encoder.pth").exists():
                    t = time.perf_counter()
                    pretrain(a.cohort, run, pretrain_config("demo", objective=objective, **same), overwrite=True)
                    result[f"{objective}_pretrain_s"] = round(time.perf_counter() - t, 1)
                runs[objective] = run
        encoders = [str(r) for r in runs.values()] + ["random", "random:papagei", "features"]
        names = [*runs, "random", "random-papagei", "features"]
        t = time.perf_counter()
        s = probe(data, encoders, a.out / "result", names=names, config=ProbeConfig(), overwrite=True)
        result["probe_wall_s"] = round(time.perf_counter() - t, 1)
        result["paper_table"] = str(a.out / "result" / "paper_table.csv")
        table = pl.read_csv(a.out / "result" / "probe.csv")
        for r in table.iter_rows(named=True):
            if r["value"] is not None and r["metric"] in ("auc", "mae"):
                result[f"{r['encoder']}_{r['task']}_{r['metric']}"] = (
                    f"{r['value']:.3f} ({r['ci_low']:.3f}-{r['ci_high']:.3f})" if r["ci_low"] is not None
                    else f"{r['value']:.3f}")
        better = {}
        for (task, metric), g in table.filter(pl.col("metric").is_in(["auc", "mae"])).group_by("task", "metric"):
            v = dict(g.select("encoder", "value").iter_rows())
            lower = metric in ("mae", "rmse")
            better[f"{task}/{metric}"] = (v["pretrain"] < v["random"]) if lower else (v["pretrain"] > v["random"])
        result["pretrain_beats_random_on"] = f"{sum(better.values())} of {len(better)} task metrics"
        result["examples"], result["split"] = s["examples"], s["split"]
    result["cores"] = os.cpu_count()
    result["command"] = "python bench/bench_probe.py"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
