"""``phewas pretrain``: ECG-guided contrastive pretraining of the PPG encoder (``--objective clip``,
AnyPPG's), or the paper's self-supervised baselines on PPG alone (``simclr``, ``byol``:
:mod:`encoder.ssl`), on the same pairs, loop and resume guarantees.

Reads top to bottom: model and data set-up (settings in :mod:`encoder.config`), the optional
ECG feature cache, the training loop, validation, and the final retrieval test (CLIP only).
One process on CPU; one process per GPU under ``torchrun`` (DistributedDataParallel), with the
contrastive batch gathered across ranks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict

import numpy as np
import torch

from cohorts.store import open_segments
from phewas.base.errors import PhewasError
from phewas.base.io import atomic_file, file_sha256, write_json, write_manifest
from phewas.base.progress import progress

from .checkpoints import initial_encoder, load_checkpoint, load_ecgfounder, save_anyppg, unwrap
from .clip import PPGECGClip, clip_loss, retrieval_metrics
from .config import PretrainConfig
from .data import PairWindows, read_rows
from .distributed import autocast
from .loop import Hooks, LoopSettings, TrainState, fit, in_batches, train_batches, wrap
from .net1d import Net1D
from .optim import param_groups, warmup_cosine
from .runs import RunResult, check_batches, launch
from .ssl import BYOL, SimCLR, byol_loss, nt_xent, two_views

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
        with atomic_file(path) as tmp, open(tmp, "wb") as f:  # a file object: np.save would append .npy
            np.save(f, out)
    if d is not None and d.world > 1:
        torch.distributed.barrier()
    if not valid():
        raise PhewasError(f"{path}: ECG feature cache missing or of the wrong shape after rank 0 wrote it")
    return np.load(path, mmap_mode="r")


def _cache_key(cfg: PretrainConfig) -> str:
    h = hashlib.sha256(file_sha256(cfg.ecg_checkpoint).encode() if cfg.ecg_checkpoint else b"scratch")
    h.update(json.dumps(cfg.ecg.to_dict(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def _batch_loss(model, batch, cfg, device, gather=True, key=(0,)):
    """The objective's loss on one (micro-)batch; ``key`` seeds the augmentations of SimCLR and BYOL."""
    if cfg.objective == "clip":
        ppg, ecg = (t.to(device, non_blocking=True) for t in batch)
        with autocast(device, cfg.bf16):
            p, e, scale = model(ppg, ecg)
            return clip_loss(p.float(), e.float(), scale.float(), gather=gather)
    x1, x2 = (v.to(device, non_blocking=True) for v in two_views(batch[0], key))
    with autocast(device, cfg.bf16):
        if cfg.objective == "simclr":
            z1, z2 = model(x1, x2)
            return nt_xent(z1.float(), z2.float(), cfg.temperature, gather=gather)
        online, target = model(x1, x2)
        return byol_loss([o.float() for o in online], [t.float() for t in target])


@torch.no_grad()
def evaluate_loss(model, dataset, cfg, device, max_batches: int = 50) -> float:
    """Mean loss over the first ``max_batches`` full batches (the contrastive loss depends on the
    batch, so a last partial batch would not compare)."""
    m = unwrap(model)
    m.eval()
    b = min(cfg.batch_size, len(dataset))
    # validation's augmentations: draws of their own (2 ** 32 is never a training step)
    losses = [float(_batch_loss(m, batch, cfg, device, gather=False, key=(cfg.seed, 2 ** 32, i)))
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
    return launch(lambda *a: _pretrain(cfg, *a), cohort, run, cfg, resume=resume, overwrite=overwrite,
                  stop_after_steps=stop_after_steps)


def _pretrain(cfg, cohort, run, d, resume, stop_after_steps, started):
    ckpt_dir = run / "checkpoints"
    torch.manual_seed(cfg.seed)
    store = open_segments(cohort)

    # Models
    ppg_encoder, origin = initial_encoder(cfg)
    log.info(origin)
    features = None
    if cfg.objective == "simclr":
        model = SimCLR(ppg_encoder, cfg.embed_dim, cfg.temperature).to(d.device)
    elif cfg.objective == "byol":
        model = BYOL(ppg_encoder, cfg.embed_dim, decay=cfg.ema_decay).to(d.device)
    else:
        if cfg.ecg_frozen:
            ecg_encoder, report = load_ecgfounder(cfg.ecg_checkpoint, cfg.ecg)
            log.info("ECG encoder loaded from %s (%d tensors used, %d ignored); frozen", cfg.ecg_checkpoint,
                     report["used"], len(report["ignored"]))
            for p in ecg_encoder.parameters():
                p.requires_grad_(False)
        else:
            ecg_encoder = Net1D(cfg.ecg)
            log.info("no ECG checkpoint: the ECG encoder trains from scratch")
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
    state = TrainState(step=0, best=float("inf"))
    if resume and (ckpt_dir / "last.pt").exists():
        saved = load_checkpoint(ckpt_dir / "last.pt", model=model, optimizer=opt, scheduler=sched)
        state = TrainState(step=saved["step"], best=saved["best"])
        log.info("resumed at step %d", state.step)

    # Training loop
    at = {"step": state.step, "micro": 0}  # seeds each micro-batch's augmentations: a resumed run draws alike

    def loss_fn(train_model, part):  # each micro-batch brings its own negatives
        key = (cfg.seed, at["step"], at["micro"], d.rank)
        at["micro"] += 1
        return _batch_loss(train_model, part, cfg, d.device, key=key)

    def after_step():
        at["step"], at["micro"] = at["step"] + 1, 0
        if cfg.objective == "byol":
            model.update_target()
        if cfg.objective != "clip":
            return {"lr": sched.get_last_lr()[0]}
        model.clamp_temperature()
        return {"lr": sched.get_last_lr()[0], "temperature": float(1 / model.logit_scale.detach().exp())}

    model.train()
    _freeze_bn_if_frozen(model, cfg)
    end = cfg.steps if stop_after_steps is None else min(cfg.steps, state.step + stop_after_steps)
    settings = LoopSettings(total=cfg.steps, end=end, eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every,
                            grad_accum=cfg.grad_accum, grad_clip=cfg.grad_clip, metric="val_loss",
                            higher_is_better=False, desc="pretrain")
    hooks = Hooks(loss=loss_fn, evaluate=lambda: evaluate_loss(model, val, cfg, d.device), after_step=after_step)
    out = fit(model, wrap(model, d, cfg.compile), train_batches(train, cfg, d, state.step, cfg.steps), opt, sched,
              d=d, run=run, hooks=hooks, settings=settings, state=state, extra={"config": json.dumps(asdict(cfg))})
    step, best = out.state.step, out.state.best
    if step < cfg.steps:
        return RunResult(step, finished=False, main=d.main)
    if not d.main:
        return RunResult(step, finished=True, main=False)

    # Final: the best checkpoint, its PPG encoder in AnyPPG format, and the retrieval test
    if (ckpt_dir / "best.pt").exists():
        load_checkpoint(ckpt_dir / "best.pt", model=model)
    save_anyppg(model.ppg_encoder, run / "ppg_encoder.pth")
    retrieval = None
    if cfg.objective == "clip":  # PPG-to-ECG retrieval: what ECG guidance teaches
        p, e = embed_pairs(model, test, d.device)
        retrieval = retrieval_metrics(p, e, min(cfg.retrieval_batch, len(p)))
        retrieval["split"] = "pretrain_test"
        write_json(run / "retrieval.json", retrieval)
    summary = {"step": step, "finished": True, "objective": cfg.objective, "best_val_loss": best,
               "retrieval": retrieval,
               "train_pairs": len(train), "val_pairs": len(val), "test_pairs": len(test),
               "windows_per_s_last_session": out.windows_per_s}
    write_manifest(run, command="pretrain", inputs={"cohort": str(cohort.resolve()),
                                                    "ecg_checkpoint": cfg.ecg_checkpoint},
                   parameters=asdict(cfg), summary=summary)
    return RunResult(step, finished=True, summary=summary)
