"""``phewas pretrain``: ECG-guided contrastive pretraining of the PPG encoder (``--objective clip``,
AnyPPG's), or the paper's self-supervised baselines on PPG alone (``simclr``, ``byol``), on the
same pairs, loop and resume guarantees.

Reads top to bottom: the recipe's settings (:data:`encoder.config.RECIPES`, then the preset, then
flags), the model (:mod:`encoder.objectives`), the optional ECG feature cache, the batches (the
release's fixed chunks, or pairs shuffled freely), the optimiser and schedule, the training loop,
and the finish: the best or last weights exported in AnyPPG's format and, for CLIP, the retrieval
test. One process on CPU; one process per GPU under ``torchrun`` (DistributedDataParallel).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, replace

import numpy as np
import torch

from cohorts.store import check_profiles, open_segments
from phewas.base.errors import PhewasError, SettingError
from phewas.base.io import atomic_file, file_sha256, write_json, write_manifest
from phewas.base.progress import progress

from .checkpoints import initial_encoder, load_checkpoint, load_ecgfounder, save_anyppg, unwrap
from .clip import retrieval_metrics
from .config import PretrainConfig
from .data import PairWindows, identity_collate, read_rows
from .distributed import autocast
from .loop import Hooks, LoopSettings, TrainState, fit, in_batches, train_batches, wrap
from .net1d import Net1D
from .objectives import OBJECTIVES
from .optim import param_groups, release_cosine, warmup_cosine
from .runs import RunResult, check_batches, init_profile, launch, write_inputs
from .sampler import ChunkBatches

log = logging.getLogger(__name__)


class CachedPairs(PairWindows):
    """Pairs whose ECG side is a precomputed feature vector: ``(ppg [1, 1250], features [D])``."""

    def __init__(self, store, splits, features: np.ndarray):
        super().__init__(store, splits)
        self.features = features

    def __getitems__(self, idx):
        rows = self.rows[np.asarray(idx)]
        ppg = read_rows(self.store.pairs_ppg_array, rows)[:, None, :]
        return torch.from_numpy(ppg), torch.from_numpy(read_rows(self.features, rows))


def ecg_feature_cache(store, encoder: Net1D, key: str, device, batch: int = 256, d=None, bf16: bool = True
                      ) -> np.ndarray:
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
                with autocast(device, bf16):
                    out[a:a + batch] = encoder(x).float().cpu().numpy()
        with atomic_file(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save would append .npy
            np.save(f, out)
    if d is not None and d.world > 1:
        torch.distributed.barrier()
    if not valid():
        raise PhewasError(f"{path}: ECG feature cache missing or of the wrong shape after rank 0 wrote it")
    return np.load(path, mmap_mode="r")


def _cache_key(cfg: PretrainConfig, device) -> str:
    h = hashlib.sha256(file_sha256(cfg.ecg_checkpoint).encode() if cfg.ecg_checkpoint else b"scratch")
    h.update(json.dumps(cfg.ecg.to_dict(), sort_keys=True).encode())
    h.update(f"bf16={cfg.bf16 and device.type == 'cuda'}".encode())  # the precision the features were made in
    return h.hexdigest()[:16]


def process_batch(cfg: PretrainConfig, world: int) -> int:
    """Pairs per process and step: ``device_batch``, or the global ``batch_size`` shared out."""
    if cfg.device_batch:
        return cfg.device_batch
    if cfg.batch_size % world:
        raise SettingError(f"--batch-size: must be a multiple of the {world} processes, got {cfg.batch_size}")
    return cfg.batch_size // world


def batches(dataset, cfg: PretrainConfig, d, step: int, total: int | None):
    """This process's batches from ``step`` on: the release's fixed chunks when ``chunk_size``
    is set (:class:`~encoder.sampler.ChunkBatches`), else pairs shuffled each epoch."""
    if not cfg.chunk_size:
        return train_batches(dataset, process_batch(cfg, d.world) * d.world, cfg.seed, cfg.workers, d, step, total)
    sampler = ChunkBatches([np.arange(len(dataset))], cfg.chunk_size, process_batch(cfg, d.world) // cfg.chunk_size,
                           cfg.seed, d.rank, d.world, start_step=step, total_steps=total)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate,
                                       num_workers=cfg.workers, pin_memory=d.device.type == "cuda",
                                       generator=torch.Generator().manual_seed(cfg.seed + step))


def steps_per_epoch(n: int, cfg: PretrainConfig, world: int) -> tuple[int, int]:
    """``(optimiser steps per epoch, batches per epoch before sharing out)`` of ``n`` pairs."""
    per = process_batch(cfg, world)
    if cfg.chunk_size:
        probe = ChunkBatches([np.arange(n)], cfg.chunk_size, per // cfg.chunk_size, 0, 0, world)
        return probe.per_epoch, probe.batches
    return n // (per * world), n // per


def schedule(opt, cfg: PretrainConfig, total: int, batches_per_epoch: int, world: int):
    """The recipe's learning-rate schedule (:mod:`encoder.optim`)."""
    if cfg.schedule_ticks == "world":  # the release: ticks counted as accelerate advances them
        ticks = cfg.epochs * batches_per_epoch if cfg.epochs else total * world
        return release_cosine(opt, cfg.warmup_steps, ticks, world)
    return warmup_cosine(opt, cfg.warmup_steps, total)


@torch.no_grad()
def evaluate_loss(model, dataset, cfg, device, max_batches: int = 50) -> float:
    """Mean loss over the first ``max_batches`` full batches of one process's size (the
    contrastive loss depends on the batch, so a last partial batch would not compare)."""
    objective = OBJECTIVES[cfg.objective]
    m = unwrap(model)
    m.eval()
    b = min(process_batch(cfg, 1) if cfg.device_batch else cfg.batch_size, len(dataset))
    # validation's augmentations: draws of their own (2 ** 32 is never a training step)
    losses = [float(objective.loss(m, batch, cfg, device, False, (cfg.seed, 2 ** 32, i, 0)))
              for batch, i in zip(in_batches(dataset, b), range(min(len(dataset) // b, max_batches)))]
    m.train()
    _freeze_bn_if_frozen(m, cfg)
    return float(np.mean(losses)) if losses else float("nan")


@torch.no_grad()
def embed_pairs(model, dataset, device, batch: int = 256):
    m = unwrap(model)
    m.eval()
    ps, es = [], []
    for ppg, ecg in in_batches(dataset, batch):
        p, e, _ = m(ppg.to(device), ecg.to(device))
        ps.append(p.float().cpu().numpy())
        es.append(e.float().cpu().numpy())
    return np.concatenate(ps), np.concatenate(es)


def _freeze_bn_if_frozen(model, cfg):
    if cfg.objective == "clip" and cfg.ecg_frozen and model.ecg_encoder is not None:
        model.ecg_encoder.eval()


def pretrain(cohort, run, cfg: PretrainConfig, *, resume: bool = False, overwrite: bool = False,
             stop_after_steps: int | None = None) -> RunResult:
    """``phewas pretrain``: train. ``stop_after_steps`` ends this invocation (resumably) after that
    many steps, for time-limited job schedulers."""
    if cfg.objective == "clip" and not cfg.ecg_frozen and not cfg.ecg_from_scratch:
        raise SettingError("--ecg-checkpoint: CLIP pretraining aligns the PPG encoder with a frozen ECGFounder; "
                           "give its checkpoint, or pass --ecg-from-scratch to train the ECG encoder too")
    if cfg.chunk_size and cfg.loss_scope == "global":
        raise SettingError("--chunk-size: chunked batches differ in size across processes; use them with "
                           "--loss-scope device (as the anyppg recipe does)")
    return launch(lambda *a: _pretrain(cfg, *a), cohort, run, cfg, resume=resume, overwrite=overwrite,
                  stop_after_steps=stop_after_steps)


def _pretrain(cfg, cohort, run, d, resume, stop_after_steps, started):
    ckpt_dir = run / "checkpoints"
    torch.manual_seed(cfg.seed)
    store = open_segments(cohort)
    profile = check_profiles({str(store.path): store.profile, **init_profile(cfg.init)})
    objective = OBJECTIVES[cfg.objective]

    # Model
    ppg_encoder, arch, origin = initial_encoder(cfg)
    cfg = replace(cfg, ppg=arch)  # the architecture trained, as config.json records it
    log.info(origin)
    features, ecg_encoder = None, None
    if objective.uses_ecg:
        if cfg.ecg_frozen:
            ecg_encoder, report = load_ecgfounder(cfg.ecg_checkpoint, cfg.ecg)
            log.info("ECG encoder loaded from %s (%d tensors used, %d ignored); frozen", cfg.ecg_checkpoint,
                     report["used"], len(report["ignored"]))
            for p in ecg_encoder.parameters():
                p.requires_grad_(False)
        else:
            ecg_encoder = Net1D(cfg.ecg)
            log.info("--ecg-from-scratch: the ECG encoder trains too")
        if cfg.use_cache:
            if not cfg.ecg_frozen:
                raise PhewasError("--cache-ecg needs a frozen ECG encoder (--ecg-checkpoint)")
            features = ecg_feature_cache(store, ecg_encoder, _cache_key(cfg, d.device), d.device, d=d, bf16=cfg.bf16)
            ecg_encoder = None
    model = objective.build(ppg_encoder, cfg, ecg_encoder, cfg.ecg.out_dim).to(d.device)
    _freeze_bn_if_frozen(model, cfg)

    # Data
    def pairs(split):
        return CachedPairs(store, [split], features) if features is not None else PairWindows(store, [split])
    train, val, test = pairs("pretrain_train"), pairs("pretrain_val"), pairs("pretrain_test")
    per_epoch, batches_per_epoch = steps_per_epoch(len(train), cfg, d.world)
    total = cfg.steps or cfg.epochs * per_epoch
    check_batches(d, process_batch(cfg, d.world) * d.world, cfg.grad_accum, len(train), len(val), "pairs")
    started()  # set-up worked: the run folder appears (or replaces the old one, with --force)
    if d.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        write_json(run / "config.json", asdict(cfg))
        write_inputs(run, profile, [str(store.path.resolve())])

    # Optimiser, schedule, resume
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay, base_lr=cfg.lr, decay_all=cfg.decay_all),
                            lr=cfg.lr, betas=cfg.betas)
    sched = schedule(opt, cfg, total, batches_per_epoch, d.world)
    state = TrainState(step=0, best=float("inf"))
    if resume and (ckpt_dir / "last.pt").exists():
        saved = load_checkpoint(ckpt_dir / "last.pt", model=model, optimizer=opt, scheduler=sched)
        state = TrainState(step=saved["step"], best=saved["best"])
        log.info("resumed at step %d", state.step)

    # Training loop: each micro-batch brings its own negatives; its augmentations are seeded by
    # (seed, step, micro-batch, rank), so a resumed run draws what the uninterrupted one would
    gather = cfg.loss_scope == "global"

    def loss_fn(train_model, part, step, micro):
        return objective.loss(train_model, part, cfg, d.device, gather, (cfg.seed, step, micro, d.rank))

    def after_step():
        return {"lr": sched.get_last_lr()[0], **objective.after_step(model, cfg)}

    model.train()
    _freeze_bn_if_frozen(model, cfg)
    end = total if stop_after_steps is None else min(total, state.step + stop_after_steps)
    settings = LoopSettings(total=total, end=end, eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every,
                            grad_accum=cfg.grad_accum, grad_clip=cfg.grad_clip, metric="val_loss",
                            higher_is_better=False, desc="pretrain")
    hooks = Hooks(loss=loss_fn, evaluate=lambda: evaluate_loss(model, val, cfg, d.device), after_step=after_step)
    out = fit(model, wrap(model, d, cfg.compile), batches(train, cfg, d, state.step, total), opt, sched,
              d=d, run=run, hooks=hooks, settings=settings, state=state, extra={"config": json.dumps(asdict(cfg))})
    step, best = out.state.step, out.state.best
    if step < total:
        return RunResult(step, finished=False, main=d.main)
    if not d.main:
        return RunResult(step, finished=True, main=False)

    # Final: the kept checkpoint, its PPG encoder in AnyPPG format, and the retrieval test
    if cfg.keep == "best" and (ckpt_dir / "best.pt").exists():
        load_checkpoint(ckpt_dir / "best.pt", model=model)
    save_anyppg(model.ppg_encoder, run / "ppg_encoder.pth")
    retrieval = None
    if objective.uses_ecg:  # PPG-to-ECG retrieval: what ECG guidance teaches
        p, e = embed_pairs(model, test, d.device)
        retrieval = retrieval_metrics(p, e, min(cfg.retrieval_batch, len(p)))
        retrieval["split"] = "pretrain_test"
        write_json(run / "retrieval.json", retrieval)
    summary = {"step": step, "finished": True, "objective": cfg.objective, "recipe": cfg.recipe,
               "kept": cfg.keep, "best_val_loss": best, "retrieval": retrieval,
               "train_pairs": len(train), "val_pairs": len(val), "test_pairs": len(test),
               "windows_per_s_last_session": out.windows_per_s}
    write_manifest(run, command="pretrain", inputs={"cohort": str(cohort.resolve()),
                                                    "ecg_checkpoint": cfg.ecg_checkpoint, "preprocess": profile},
                   parameters=asdict(cfg), summary=summary)
    return RunResult(step, finished=True, summary=summary)
