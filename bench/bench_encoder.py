"""Benchmark: encoder training throughput and pretraining steps with and without the ECG cache.

    python bench/bench_encoder.py [--batch 64] [--steps 5]

(1) PPG windows per second, forward + backward at batch 64, of ``encoder.net1d.Net1D`` (AnyPPG
size) against the literal eager reference network (``tests/reference_net1d.py``), same run,
alternating to spread machine noise. On a GPU also bf16 autocast with ``torch.compile``.
(2) Pretraining step time with the frozen ECGFounder-size tower run every step versus read from
the feature cache (same PPG tower, same batch). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reference_net1d import ReferenceNet1D  # noqa: E402

from encoder.clip import PPGECGClip, clip_loss  # noqa: E402
from encoder.config import anyppg_config, ecgfounder_config  # noqa: E402
from encoder.net1d import Net1D  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def per_second(step, steps: int, device) -> float:
    """Calls of ``step`` per second, after one warm-up call."""
    step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - t)


def train_rate(model, device, batch, steps, bf16=False):
    x = torch.randn(batch, 1, 1250, device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            loss = model(x).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # a second warm-up: first calls allocate
    return batch * per_second(step, steps, device)


def pretrain_step_rate(device, batch, steps, cached: bool):
    ppg = Net1D(anyppg_config()).to(device)
    ecg = Net1D(ecgfounder_config()).to(device).eval()
    for p in ecg.parameters():
        p.requires_grad_(False)
    model = PPGECGClip(ppg, 1024, None if cached else ecg).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(batch, 1, 1250, device=device)
    e = torch.randn(batch, 1, 5000, device=device)
    feats = torch.randn(batch, 1024, device=device)

    def step():
        p, z, s = model(x, feats if cached else e)
        clip_loss(p, z, s).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return per_second(step, steps, device)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--pretrain-batch", type=int, default=32)
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    ours, ref = Net1D(anyppg_config()).to(device), ReferenceNet1D().to(device)
    rates = {"ours": [], "reference": []}
    for _ in range(3):  # alternate
        rates["ours"].append(train_rate(ours, device, a.batch, a.steps))
        rates["reference"].append(train_rate(ref, device, a.batch, a.steps))
    best = {k: max(v) for k, v in rates.items()}
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{os.cpu_count()}"
    out = {"bench": "encoder", "device": name,
           "torch": torch.__version__, "batch": a.batch,
           "train_windows_per_s_ours_fp32": round(best["ours"], 1),
           "train_windows_per_s_reference_fp32": round(best["reference"], 1),
           "ratio_ours_to_reference": round(best["ours"] / best["reference"], 3)}
    if device.type == "cuda":
        compiled = torch.compile(Net1D(anyppg_config()).to(device))
        rate = train_rate(compiled, device, a.batch, a.steps * 4, bf16=True)
        out["train_windows_per_s_ours_bf16_compile"] = round(rate, 1)
        out["ratio_bf16_compile_to_fp32_eager"] = round(out["train_windows_per_s_ours_bf16_compile"] / best["ours"], 2)
    live = pretrain_step_rate(device, a.pretrain_batch, a.steps, cached=False)
    cached = pretrain_step_rate(device, a.pretrain_batch, a.steps, cached=True)
    out.update({"pretrain_batch": a.pretrain_batch, "pretrain_steps_per_s_frozen_ecg_live": round(live, 3),
                "pretrain_steps_per_s_ecg_cache": round(cached, 3), "ecg_cache_speedup": round(cached / live, 2),
                "command": f"python bench/bench_encoder.py --batch {a.batch} --steps {a.steps}"})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
