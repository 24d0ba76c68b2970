"""``phewas pretrain``: ECG-guided contrastive pretraining of the PPG encoder.

Reads top to bottom: configuration (plain dataclasses and two presets), model and data set-up,
the optional ECG feature cache, the training loop, validation, and the final retrieval test.
One process on CPU; one process per GPU under ``torchrun`` (DistributedDataParallel), with the
contrastive batch gathered across ranks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from cohorts.segments import open_segments
from phewas.errors import PhewasError, check_settings
from phewas.io import file_sha256, remove_stale_temporaries, write_json, write_manifest
from phewas.progress import progress

from .checkpoints import load_ecgfounder, save_anyppg
from .clip import PPGECGClip, clip_loss, retrieval_metrics
from .data import PairWindows, identity_collate, read_rows
from .net1d import Net1D, Net1DConfig, anyppg_config, ecgfounder_config
from .training import (MetricsLog, ResumableBatches, TrainConfig, autocast, check_batches, from_preset, launch,
                       load_checkpoint, param_groups, save_checkpoint, unwrap, warmup_cosine)

log = logging.getLogger(__name__)


def demo_ppg() -> Net1DConfig:
    """A narrow member of the same family for CPU runs (~0.1 M parameters)."""
    return Net1DConfig(base_filters=16, filter_list=[16, 32, 32, 64, 64, 96], m_blocks_list=[1, 1, 1, 1, 1, 1],
                       dropout=0.1)


def demo_ecg() -> Net1DConfig:
    return Net1DConfig(base_filters=16, filter_list=[16, 32, 32, 64, 64, 96], m_blocks_list=[1, 1, 1, 1, 1, 1],
                       kernel_size=16, dropout=0.0, input_length=5000)


@dataclass
class PretrainConfig(TrainConfig):
    """Every field is a ``phewas pretrain`` flag; presets fill them, flags override."""

    ppg: Net1DConfig = field(default_factory=anyppg_config)
    ecg: Net1DConfig = field(default_factory=ecgfounder_config)
    ecg_checkpoint: str | None = None
    cache_ecg: bool | None = None  # default: on when the ECG encoder is frozen (loaded)
    embed_dim: int = 128
    temperature: float = 0.07
    steps: int = 20000
    eval_every: int = 500
    checkpoint_every: int = 500
    retrieval_batch: int = 64

    def __post_init__(self):
        super().__post_init__()
        check_settings(
            (self.steps >= 1, "--steps", "at least 1", self.steps),
            (self.eval_every >= 1, "--eval-every", "at least 1", self.eval_every),
            (self.checkpoint_every >= 1, "--checkpoint-every", "at least 1", self.checkpoint_every),
            (self.retrieval_batch >= 2, "--retrieval-batch", "at least 2", self.retrieval_batch),
            (self.temperature > 0, "temperature", "more than 0", self.temperature),
            (self.embed_dim >= 1, "embed_dim", "at least 1", self.embed_dim),
        )

    @property
    def ecg_frozen(self) -> bool:
        return self.ecg_checkpoint is not None

    @property
    def use_cache(self) -> bool:
        return self.ecg_frozen if self.cache_ecg is None else self.cache_ecg


PRESETS = {
    # Full-size encoders as released (AnyPPG PPG tower, ECGFounder-shaped ECG tower). Optimiser
    # values are this toolkit's defaults for GPU runs.
    "study": {},
    # CPU-sized: the same family, narrow; a few hundred steps.
    "demo": {"ppg": demo_ppg(), "ecg": demo_ecg(), "batch_size": 64, "steps": 300, "lr": 5e-3,
             "warmup_steps": 30, "eval_every": 50, "checkpoint_every": 50, "retrieval_batch": 32,
             "workers": 0, "weight_decay": 0.01},
}


def make_config(preset: str = "study", **overrides) -> PretrainConfig:
    """A preset with overrides (``None`` values are ignored)."""
    return from_preset(PretrainConfig, PRESETS, preset, overrides)


class CachedPairs(PairWindows):
    """Pairs whose ECG side is a precomputed feature vector: ``(ppg [1, 1250], features [D])``."""

    def __init__(self, store, splits, features: np.ndarray):
        super().__init__(store, splits)
        self.features = features

    def __getitems__(self, idx):
        rows = self.rows[np.asarray(idx)]
        ppg = read_rows(self.store.pairs_ppg_array, rows)[:, None, :]
        return torch.from_numpy(ppg), torch.from_numpy(read_rows(self.features, rows))


def ecg_feature_cache(store, encoder: Net1D, key: str, device, batch: int = 256, d=None) -> np.ndarray:
    """ECG-encoder features of every pair, computed once and kept beside the segment store.

    Under torchrun (``d`` with several processes) rank 0 computes and writes while the others
    wait at a barrier, then every rank maps the finished file: concurrent writers could corrupt
    it, and a rank could map a half-written one. The temporary name carries the process id.
    """
    folder = store.path / "ecg_cache"
    path = folder / f"{key}.npy"
    n = store.pairs_ecg_array.shape[0]

    def valid() -> bool:
        return path.exists() and np.load(path, mmap_mode="r").shape == (n, encoder.out_dim)

    if (d is None or d.main) and not valid():
        folder.mkdir(exist_ok=True)
        encoder = encoder.to(device).eval()
        out = np.zeros((n, encoder.out_dim), np.float16)
        with torch.no_grad():
            for a in progress(range(0, n, batch), desc="ECG feature cache", unit="batch"):
                x = torch.from_numpy(np.asarray(store.pairs_ecg_array[a:a + batch], np.float32))[:, None].to(device)
                with autocast(device, True):
                    out[a:a + batch] = encoder(x).float().cpu().numpy()
        remove_stale_temporaries(path)  # a killed rank 0's half-written cache
        tmp = folder / f".{path.name}.tmp-{os.getpid()}"  # the name remove_stale_temporaries knows
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a name
            np.save(f, out)
        tmp.replace(path)
    if d is not None and d.world > 1:
        torch.distributed.barrier()
    if not valid():
        raise PhewasError(f"{path}: ECG feature cache missing or of the wrong shape after rank 0 wrote it")
    return np.load(path, mmap_mode="r")


def _cache_key(cfg: PretrainConfig) -> str:
    h = hashlib.sha256(file_sha256(cfg.ecg_checkpoint).encode() if cfg.ecg_checkpoint else b"scratch")
    h.update(json.dumps(cfg.ecg.to_dict(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def _batch_loss(model, batch, cfg, device, gather=True):
    ppg, ecg = (t.to(device, non_blocking=True) for t in batch)
    with autocast(device, cfg.bf16):
        p, e, scale = model(ppg, ecg)
        return clip_loss(p.float(), e.float(), scale.float(), gather=gather)


@torch.no_grad()
def evaluate_loss(model, dataset, cfg, device, max_batches: int = 50) -> float:
    m = unwrap(model)
    m.eval()
    b = min(cfg.batch_size, len(dataset))
    losses = [float(_batch_loss(m, dataset.__getitems__(list(range(a, a + b))), cfg, device, gather=False))
              for a in range(0, min(len(dataset) - b + 1, max_batches * b), b)]
    m.train()
    _freeze_bn_if_frozen(m, cfg)
    return float(np.mean(losses)) if losses else float("nan")


@torch.no_grad()
def embed_pairs(model, dataset, device, batch: int = 256):
    m = unwrap(model)
    m.eval()
    ps, es = [], []
    for a in range(0, len(dataset), batch):
        ppg, ecg = (t.to(device) for t in dataset.__getitems__(list(range(a, min(a + batch, len(dataset))))))
        p, e, _ = m(ppg, ecg)
        ps.append(p.float().cpu().numpy())
        es.append(e.float().cpu().numpy())
    return np.concatenate(ps), np.concatenate(es)


def _freeze_bn_if_frozen(model, cfg):
    if cfg.ecg_frozen and model.ecg_encoder is not None:
        model.ecg_encoder.eval()


def pretrain(cohort, run, cfg: PretrainConfig, *, resume: bool = False, overwrite: bool = False,
             stop_after: int | None = None) -> dict:
    """Train; returns the run's summary. ``stop_after`` ends this invocation (resumably) after that
    many steps, for time-limited job schedulers."""
    return launch(lambda *a: _pretrain(cfg, *a), cohort, run, cfg, resume=resume, overwrite=overwrite,
                  stop_after=stop_after)


def _pretrain(cfg, cohort, run, d, resume, stop_after, started):
    ckpt_dir = run / "checkpoints"
    torch.manual_seed(cfg.seed)
    store = open_segments(cohort)

    # Models
    ppg_encoder = Net1D(cfg.ppg)
    if cfg.ecg_frozen:
        ecg_encoder, report = load_ecgfounder(cfg.ecg_checkpoint, cfg.ecg)
        log.info("ECG encoder loaded from %s (%d tensors used, %d ignored); frozen", cfg.ecg_checkpoint,
                 report["used"], len(report["ignored"]))
        for p in ecg_encoder.parameters():
            p.requires_grad_(False)
    else:
        ecg_encoder = Net1D(cfg.ecg)
        log.info("no ECG checkpoint: the ECG encoder trains from scratch")
    features = None
    if cfg.use_cache:
        if not cfg.ecg_frozen:
            raise PhewasError("--cache-ecg needs a frozen ECG encoder (--ecg-checkpoint)")
        features = ecg_feature_cache(store, ecg_encoder, _cache_key(cfg), d.device, d=d)
        ecg_encoder = None
    model = PPGECGClip(ppg_encoder, cfg.ecg.out_dim, ecg_encoder, cfg.embed_dim, cfg.temperature).to(d.device)
    _freeze_bn_if_frozen(model, cfg)

    # Data
    def pairs(split):
        return CachedPairs(store, [split], features) if features is not None else PairWindows(store, [split])
    train, val, test = pairs("pretrain_train"), pairs("pretrain_val"), pairs("pretrain_test")
    check_batches(d, cfg.batch_size, cfg.grad_accum, len(train), len(val), "pairs")
    started()  # set-up worked: the run folder appears (or replaces the old one, with --force)
    if d.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        write_json(run / "config.json", asdict(cfg))

    # Optimiser, schedule, resume
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay, base_lr=cfg.lr), lr=cfg.lr, betas=(0.9, 0.98))
    sched = warmup_cosine(opt, cfg.warmup_steps, cfg.steps)
    step, best = 0, float("inf")
    last = ckpt_dir / "last.pt"
    if resume and last.exists():
        state = load_checkpoint(last, model=model, optimizer=opt, scheduler=sched)
        step, best = state["step"], state["best"]
        log.info("resumed at step %d", step)
    train_model = DDP(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None) if d.world > 1 else model
    if cfg.compile:
        train_model = torch.compile(train_model)
    sampler = ResumableBatches(len(train), cfg.batch_size, cfg.seed, d.rank, d.world, start_step=step,
                               total_steps=cfg.steps)
    # its own generator: creating the iterator must not draw from the global RNG (exact resume)
    loader = torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=identity_collate,
                                         num_workers=cfg.workers, pin_memory=d.device.type == "cuda",
                                         generator=torch.Generator().manual_seed(cfg.seed + step))
    metrics = MetricsLog(run, enabled=d.main)
    bar = progress(total=cfg.steps, initial=step, desc="pretrain", unit="step", disable=None if d.main else True)
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    t0, seen = time.perf_counter(), 0

    # Training loop
    model.train()
    _freeze_bn_if_frozen(model, cfg)
    for batch in loader:
        if step >= end:
            break
        opt.zero_grad(set_to_none=True)
        parts = [tuple(t.chunk(cfg.grad_accum)[i] for t in batch) for i in range(cfg.grad_accum)]
        total = 0.0
        for part in parts:  # gradient accumulation: each micro-batch brings its own negatives
            loss = _batch_loss(train_model, part, cfg, d.device) / cfg.grad_accum
            loss.backward()
            total += float(loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        sched.step()
        model.clamp_temperature()
        step += 1
        seen += batch[0].shape[0] * d.world
        bar.update()
        metrics.log(step, train_loss=total, lr=sched.get_last_lr()[0], grad_norm=grad_norm,
                    temperature=float(1 / model.logit_scale.detach().exp()))
        if d.main and (step % cfg.eval_every == 0 or step == cfg.steps):
            val_loss = evaluate_loss(model, val, cfg, d.device)
            metrics.log(step, val_loss=val_loss, windows_per_s=seen / (time.perf_counter() - t0))
            if val_loss < best:
                best = val_loss
                save_checkpoint(ckpt_dir / "best.pt", model=model, optimizer=opt, scheduler=sched, step=step,
                                best=best, extra={"config": json.dumps(asdict(cfg))})
        if d.main and (step % cfg.checkpoint_every == 0 or step == end):
            save_checkpoint(last, model=model, optimizer=opt, scheduler=sched, step=step, best=best,
                            extra={"config": json.dumps(asdict(cfg))})
    bar.close()
    metrics.close()
    if step < cfg.steps:
        return {"step": step, "finished": False}
    if not d.main:
        return {"step": step, "finished": True, "main": False}

    # Final: the best checkpoint, its PPG encoder in AnyPPG format, and the retrieval test
    if (ckpt_dir / "best.pt").exists():
        load_checkpoint(ckpt_dir / "best.pt", model=model)
    save_anyppg(model.ppg_encoder, run / "ppg_encoder.pth")
    p, e = embed_pairs(model, test, d.device)
    retrieval = retrieval_metrics(p, e, min(cfg.retrieval_batch, len(p)))
    retrieval["split"] = "pretrain_test"
    write_json(run / "retrieval.json", retrieval)
    summary = {"step": step, "finished": True, "best_val_loss": best, "retrieval": retrieval,
               "train_pairs": len(train), "val_pairs": len(val), "test_pairs": len(test),
               "windows_per_s_last_session": seen / max(time.perf_counter() - t0, 1e-9)}
    write_manifest(run, command="pretrain", inputs={"cohort": str(cohort.resolve()),
                                                    "ecg_checkpoint": cfg.ecg_checkpoint},
                   parameters=asdict(cfg), summary=summary)
    return summary
