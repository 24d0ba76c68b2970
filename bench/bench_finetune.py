"""Benchmark: fine-tuning throughput (PPG windows per second, forward + backward + AdamW step) of
the stay classifier, study size (AnyPPG encoder, 20 windows per stay) and demo size.

    python bench/bench_finetune.py [--stays 4] [--steps 4] [--targets 1500]

On a GPU it also runs bf16 autocast (and torch.compile). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from encoder.config import anyppg_config, demo_ppg
from encoder.heads import StayClassifier, masked_bce
from encoder.net1d import Net1D


def rate(model, device, stays, windows, targets, steps, bf16=False):
    x = torch.randn(stays, windows, 1, 1250, device=device)
    y = (torch.rand(stays, targets, device=device) < 0.05).float()
    mask = torch.rand(stays, targets, device=device) > 0.1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            logits = model(x)
        masked_bce(logits.float(), y, mask).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return stays * windows * steps / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--targets", type=int, default=1500)
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{os.cpu_count()}"
    out = {"bench": "finetune", "device": name, "targets": a.targets}
    study = StayClassifier(Net1D(anyppg_config()), a.targets).to(device)
    out["study_windows_per_s_fp32"] = round(rate(study, device, a.stays, 20, a.targets, a.steps), 1)
    demo = StayClassifier(Net1D(demo_ppg()), a.targets).to(device)
    out["demo_windows_per_s_fp32"] = round(rate(demo, device, 16, 10, a.targets, a.steps), 1)
    if device.type == "cuda":
        out["study_windows_per_s_bf16"] = round(rate(study, device, a.stays, 20, a.targets, a.steps, bf16=True), 1)
        compiled = torch.compile(StayClassifier(Net1D(anyppg_config()), a.targets).to(device))
        compiled_rate = rate(compiled, device, a.stays, 20, a.targets, a.steps, True)
        out["study_windows_per_s_bf16_compile"] = round(compiled_rate, 1)
    w = out.get("study_windows_per_s_bf16_compile", out["study_windows_per_s_fp32"])
    out["hours_per_epoch_40k_stays_x20"] = round(40_000 * 20 / w / 3600, 2)
    out["command"] = f"python bench/bench_finetune.py --stays {a.stays} --steps {a.steps} --targets {a.targets}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
