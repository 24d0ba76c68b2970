"""Training throughput on one device: pretraining (CLIP, the ECG side as cached features) and
fine-tuning (a stay classifier) steps of AnyPPG's encoder, in fp32 eager, bf16 autocast, and bf16
with ``torch.compile``: windows per second after warm-up, peak memory, and the compiler's
recompiles and graph breaks (torch._dynamo's counters). Called by ``bench/gpu_check.sh``.

    python bench/gpu_throughput.py [--dry-run] --out FILE

``--dry-run``: a narrow encoder, a few steps, ``torch.compile`` with the eager backend (no code
generation), on whatever device there is: the script's own check, in the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from encoder.clip import PPGECGClip, clip_loss  # noqa: E402
from encoder.config import anyppg_config, demo_ppg  # noqa: E402
from encoder.distributed import autocast, configure_backends  # noqa: E402
from encoder.heads import StayClassifier, masked_bce  # noqa: E402
from encoder.net1d import Net1D  # noqa: E402


def run(kind: str, mode: str, dev: torch.device, args) -> dict:
    import torch._dynamo as dynamo
    torch.manual_seed(0)
    arch = demo_ppg() if args.dry_run else anyppg_config()
    bf16 = mode != "fp32_eager"
    if kind == "pretrain":
        model = PPGECGClip(Net1D(arch), 1024, None, dropout=0.0).to(dev)
        batch = (torch.randn(args.pairs, 1, 1250, device=dev), torch.randn(args.pairs, 1024, device=dev))

        def loss_fn(m):
            with autocast(dev, bf16):
                p, e, s = m(*batch)
            return clip_loss(p.float(), e.float(), s.float(), gather=False)
        windows = args.pairs
    else:
        model = StayClassifier(Net1D(arch), 1500).to(dev)
        x = torch.randn(args.stays, args.windows, 1, 1250, device=dev)
        y = (torch.rand(args.stays, 1500, device=dev) < 0.05).float()
        mask = torch.ones_like(y, dtype=torch.bool)

        def loss_fn(m):
            with autocast(dev, bf16):
                logits = m(x)
            return masked_bce(logits.float(), y, mask)
        windows = args.stays * args.windows
    train = model
    dynamo.reset()
    dynamo.utils.counters.clear()
    t_compile = None
    if mode == "bf16_compile":
        train = torch.compile(model, backend="eager" if args.dry_run else "inductor")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(train)
        loss.backward()
        opt.step()
        if step == 0:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t_compile = time.perf_counter() - start
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elapsed = time.perf_counter() - t0
    counters = dynamo.utils.counters
    return {"windows_per_s": round(windows * args.steps / elapsed, 1), "first_step_s": round(t_compile, 2),
            "peak_memory_gb": round(torch.cuda.max_memory_allocated(dev) / 2 ** 30, 2) if dev.type == "cuda" else None,
            "graph_breaks": int(sum(counters["graph_break"].values())),
            "recompiles": max(0, int(counters["stats"].get("unique_graphs", 0)) - 1) if mode == "bf16_compile" else 0,
            "loss_finite": bool(torch.isfinite(loss).item())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.pairs, a.stays, a.windows = (16, 2, 4) if a.dry_run else (512, 16, 20)
    a.warmup, a.steps = (1, 2) if a.dry_run else (3, 20)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    configure_backends(False)
    out = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "dry_run": a.dry_run,
           "torch": torch.__version__, "pairs_per_step": a.pairs, "stays_per_step": a.stays,
           "windows_per_stay": a.windows}
    for kind in ("pretrain", "finetune"):
        for mode in ("fp32_eager", "bf16", "bf16_compile"):
            out[f"{kind}_{mode}"] = run(kind, mode, dev, a)
            print(kind, mode, out[f"{kind}_{mode}"], file=sys.stderr, flush=True)
    for kind in ("pretrain", "finetune"):
        base = out[f"{kind}_fp32_eager"]["windows_per_s"]
        out[f"{kind}_bf16_speedup"] = round(out[f"{kind}_bf16"]["windows_per_s"] / base, 2)
        out[f"{kind}_bf16_compile_speedup"] = round(out[f"{kind}_bf16_compile"]["windows_per_s"] / base, 2)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
