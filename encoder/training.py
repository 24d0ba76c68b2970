"""What pretraining and fine-tuning share: distributed set-up, optimiser groups, the schedule,
a resumable batch order, checkpoints with RNG state, and mixed precision."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from phewas.errors import InputError, OutputExistsError, PhewasError, SettingError, check_settings
from phewas.io import make_parent


@dataclass
class TrainConfig:
    """Settings that pretraining and fine-tuning share; each is a command-line flag."""

    preset: str = "study"
    batch_size: int = 256  # global, across processes
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 1000
    grad_clip: float = 1.0
    grad_accum: int = 1
    bf16: bool = True
    compile: bool = False
    workers: int = 4
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        check_settings(
            (self.batch_size >= 1, "--batch-size", "at least 1", self.batch_size),
            (self.lr > 0, "--lr", "more than 0", self.lr),
            (self.weight_decay >= 0, "--weight-decay", "0 or more", self.weight_decay),
            (self.warmup_steps >= 0, "--warmup-steps", "0 or more", self.warmup_steps),
            (self.grad_clip > 0, "grad_clip", "more than 0", self.grad_clip),
            (self.grad_accum >= 1, "--grad-accum", "at least 1", self.grad_accum),
            (self.batch_size % self.grad_accum == 0, "--batch-size",
             f"a multiple of --grad-accum ({self.grad_accum})", self.batch_size),
            (self.workers >= 0, "--workers", "0 or more", self.workers),
            (self.device in DEVICES, "--device", f"one of {DEVICES}", self.device),
        )


DEVICES = ("auto", "cuda", "cpu")


def from_preset(cls, presets: dict, preset: str, overrides: dict):
    """``cls`` filled from ``presets[preset]``, then from ``overrides`` (``None`` values ignored)."""
    if preset not in presets:
        raise SettingError(f"--preset: unknown preset {preset!r}; choose from {sorted(presets)}")
    unknown = set(overrides) - {f.name for f in fields(cls)}
    if unknown:
        raise SettingError(f"unknown settings {sorted(unknown)}; known: {sorted(f.name for f in fields(cls))}")
    return cls(preset=preset, **{**presets[preset], **{k: v for k, v in overrides.items() if v is not None}})


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> Dist:
    """One process on CPU, or one per GPU under ``torchrun`` (reads ``RANK``/``WORLD_SIZE``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SettingError("--device cuda: torch sees no GPU (use --device cpu or auto)")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, local_rank=local, device=dev)


def check_batches(d: Dist, batch_size: int, grad_accum: int, n_train: int, n_val: int, unit: str) -> None:
    """Refuse, before any work, a batch that the processes and micro-batches cannot share, a
    training set smaller than one batch and an empty validation set."""
    if batch_size % (d.world * grad_accum):
        raise SettingError(f"--batch-size: must be a multiple of processes x --grad-accum "
                           f"({d.world} x {grad_accum}), got {batch_size}")
    if n_train == 0:
        raise PhewasError(f"no training {unit} (split pretrain_train is empty): the cohort has too few "
                          "patients with synchronised PPG-ECG")
    if n_train < batch_size:
        raise SettingError(f"--batch-size: {n_train} training {unit} are fewer than one batch of "
                           f"{batch_size}; lower --batch-size")
    if n_val == 0:
        raise PhewasError(f"no validation {unit} (split pretrain_val is empty): the cohort is too small "
                          "or its split fractions leave none")


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


SPEED_ONLY = ("workers", "compile", "device")  # may change on --resume: the weights do not depend on them


def changed_settings(saved: dict, now: dict) -> list[str]:
    """``key: old -> new`` for every setting but the speed-only ones that differs."""
    norm = lambda d: json.loads(json.dumps(d, default=str))  # noqa: E731 (tuples vs lists)
    saved, now = norm(saved), norm(now)
    return [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
            if k not in SPEED_ONLY and saved.get(k) != now.get(k)]


def launch(body, cohort, run, cfg, *, resume: bool, overwrite: bool, stop_after):
    """Check the run folder, set up the process group, call ``body(cohort, run, dist, resume,
    stop_after, started)`` and tear down, for pretraining and fine-tuning alike.

    Nothing is written to ``run`` before the body calls ``started()``, once its set-up (data,
    models, initial weights, batch sizes) has succeeded: a command that fails early leaves no
    run folder, and ``--force`` replaces a finished run only then, never before. On ``--resume``,
    ``started()`` refuses settings that differ from the run's (speed-only ones may change).
    """
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise InputError(run, "exists and is not a folder (--out names the run folder)")
    if run.exists() and not resume and not overwrite and any(run.iterdir()):
        raise OutputExistsError(f"{run}: exists already (pass --resume to continue it or --force to restart)")
    make_parent(run)
    d = setup_distributed(cfg.device)

    def started() -> Path:
        if resume and (run / "config.json").exists():
            saved = json.loads((run / "config.json").read_text())
            diff = changed_settings(saved, asdict(cfg))
            if diff:
                raise SettingError(f"--resume: settings differ from those {run} was trained with "
                                   f"({'; '.join(diff)}); only {', '.join(SPEED_ONLY)} may change")
        elif overwrite and d.main and run.exists() and any(run.iterdir()):  # --force: replace it now
            old = run.with_name(f".{run.name}.old-{os.getpid()}")
            os.replace(run, old)
            run.mkdir()
            shutil.rmtree(old, ignore_errors=True)
        if d.main:
            run.mkdir(exist_ok=True)
        if d.world > 1:
            dist.barrier()
        return run

    try:
        return body(Path(cohort), run, d, resume, stop_after, started)
    finally:
        cleanup_distributed()


def param_groups(model: nn.Module, weight_decay: float, extra_lr: dict | None = None, base_lr: float = 1e-3):
    """AdamW groups: weight decay on weight matrices and kernels only (not biases, norms or the
    temperature). ``extra_lr`` maps a name prefix to its own learning rate."""
    groups: dict = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim >= 2 and "logit_scale" not in name
        lr = base_lr
        for prefix, value in (extra_lr or {}).items():
            if name.startswith(prefix):
                lr = value
        key = (decay, lr)
        groups.setdefault(key, {"params": [], "weight_decay": weight_decay if decay else 0.0, "lr": lr})
        groups[key]["params"].append(p)
    return list(groups.values())


def warmup_cosine(optimizer, warmup: int, total: int, floor: float = 0.0):
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``floor`` x the peak at ``total``."""
    def f(step):
        if step < warmup:
            return (step + 1) / max(1, warmup)
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


class ResumableBatches(torch.utils.data.Sampler):
    """Index batches for one rank: epoch ``e`` shuffles with seed ``(seed, e)``; each global batch
    is split across ranks. Starting at a global step skips exactly the batches already seen."""

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world: int = 1,
                 start_step: int = 0, total_steps: int | None = None, shuffle: bool = True):
        if global_batch % world:
            raise ValueError(f"batch {global_batch} is not divisible by {world} processes")
        if n < global_batch:
            raise ValueError(f"{n} examples are fewer than one batch of {global_batch}")
        self.n, self.batch, self.seed, self.rank, self.world = n, global_batch, seed, rank, world
        self.per_epoch = n // global_batch  # drop the last partial batch
        self.start, self.total, self.shuffle = start_step, total_steps, shuffle

    def order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        step = self.start
        while self.total is None or step < self.total:
            epoch, pos = divmod(step, self.per_epoch)
            order = self.order(epoch)
            while pos < self.per_epoch and (self.total is None or step < self.total):
                b = order[pos * self.batch:(pos + 1) * self.batch]
                yield b[self.rank::self.world].tolist()
                pos += 1
                step += 1
            if self.total is None and step % self.per_epoch == 0:
                return

    def __len__(self):
        return (self.total - self.start) if self.total is not None else self.per_epoch


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on GPU; a no-op elsewhere."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def save_checkpoint(path: Path, *, model, optimizer, scheduler, step: int, best: float, extra: dict) -> None:
    """Everything a run needs to continue exactly: weights, optimiser, schedule, step, RNG state."""
    state = {
        "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "step": step, "best": best,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        **extra,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, *, model, optimizer=None, scheduler=None) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    unwrap(model).load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return state


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


class MetricsLog:
    """JSON lines (``metrics.jsonl``) and TensorBoard event files, written by rank 0 only."""

    def __init__(self, folder: Path, enabled: bool = True):
        self.enabled = enabled
        if enabled:
            import json

            from torch.utils.tensorboard import SummaryWriter
            self._json = json
            self.file = open(folder / "metrics.jsonl", "a")
            self.tb = SummaryWriter(str(folder / "tensorboard"))

    def log(self, step: int, **values) -> None:
        if not self.enabled:
            return
        self.file.write(self._json.dumps({"step": step, **values}) + "\n")
        self.file.flush()
        for k, v in values.items():
            if isinstance(v, (int, float)):
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.tb.close()
