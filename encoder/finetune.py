"""``phewas finetune``: the whole encoder fine-tuned end to end as one multi-label classifier over
every phecode, a stay (its PPG windows) being one example.

Train on ``pretrain_train`` and ``pretrain_test`` (the paper fine-tunes on every subject of the
pretraining cohort; the test split served pretraining's retrieval test), select and stop early on
the macro AUC over phecodes on ``pretrain_val``; the held-out population is never read while
training (checked per batch).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import polars as pl
import torch

from cohorts.splits import TRAIN_SPLITS, VAL_SPLIT, LeakageError
from cohorts.store import check_profiles, open_segments
from phewas.base.auc import auc_delong
from phewas.base.errors import PhewasError

from .checkpoints import initial_encoder
from .config import FinetuneConfig
from .data import StayWindows
from .distributed import autocast, precision, seed_ranks
from .heads import StayClassifier, masked_bce, predict_dataset
from .loop import Hooks, LoopSettings, TrainState, train_batches
from .optim import param_groups, warmup_cosine
from .runs import RunResult, Session, check_batches, init_profile
from .targets import target_phecodes
from .training import Prepared, train_run

log = logging.getLogger(__name__)


def macro_auc(y: np.ndarray, mask: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean AUC over columns with both classes among labelled entries; per-column AUCs (NaN where undefined)."""
    out = auc_delong(scores, np.where(mask, y, -1)).auc
    return (float(np.nanmean(out)) if np.isfinite(out).any() else float("nan")), out


def finetune(cohort, run, cfg: FinetuneConfig, *, resume: bool = False, overwrite: bool = False,
             stop_after_steps: int | None = None) -> RunResult:
    """``phewas finetune``: train. ``stop_after_steps`` ends this invocation (resumably) after that
    many steps."""
    return train_run("finetune", lambda session: _prepare(cfg, session), cohort, run, cfg, resume=resume,
                     overwrite=overwrite, stop_after_steps=stop_after_steps)


def _prepare(cfg, session: Session) -> Prepared:
    """Fine-tuning's set-up: the targets, data (refusing held-out patients), the classifier,
    optimiser and schedule, the loop's hooks, and its finish."""
    cohort, run, d = session.cohort, session.run, session.d
    torch.manual_seed(cfg.seed)
    encoder, arch, origin = initial_encoder(cfg)
    cfg = replace(cfg, ppg=arch)  # the architecture trained, as config.json records it
    log.info(origin)
    store = open_segments(cohort)
    profile = check_profiles({str(store.path): store.profile, **init_profile(cfg.init)})
    labels = pl.read_parquet(cohort / "labels.parquet")
    stays = pl.read_parquet(cohort / "stays.parquet")
    if session.resume and (run / "targets.json").exists():
        targets = json.loads((run / "targets.json").read_text())
    else:
        targets = target_phecodes(store, labels, cfg.min_train_positives)
    if not targets:
        raise PhewasError(f"no phecode has {cfg.min_train_positives} positive training stays; lower "
                          "--min-train-positives")
    log.info("%d target phecodes (at least %d positive training stays)", len(targets), cfg.min_train_positives)

    train = StayWindows(store, labels, targets, TRAIN_SPLITS, cfg.segments_per_stay)
    val = StayWindows(store, labels, targets, [VAL_SPLIT], cfg.segments_per_stay)
    check_batches(d, cfg.batch_size, cfg.grad_accum, len(train), len(val), "stays")
    heldout_patients = set(stays.filter(pl.col("split") == "heldout")["patient_id"])
    patient_of = dict(zip(stays["stay_id"], stays["patient_id"]))
    leaked = {s for s in train.stay_ids + val.stay_ids if patient_of[s] in heldout_patients}
    if leaked:
        raise LeakageError(f"{len(leaked)} training/validation stays belong to held-out patients; refusing to train")

    model = StayClassifier(encoder, len(targets), cfg.aggregation, cfg.head_dropout).to(d.device)
    seed_ranks(cfg.seed, d.rank)  # the weights start alike; each rank's dropout draws its own masks
    pos_weight = None
    if cfg.pos_weight:
        pos = train.y.sum(0) * 1.0
        neg = (train.mask & (train.y == 0)).sum(0)
        pos_weight = torch.tensor(np.clip(neg / np.maximum(pos, 1), 1, cfg.pos_weight_max), dtype=torch.float32,
                                  device=d.device)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay, {"encoder.": cfg.encoder_lr}, base_lr=cfg.lr))
    per_epoch = len(train) // cfg.batch_size
    total = per_epoch * cfg.epochs
    sched = warmup_cosine(opt, cfg.warmup_steps, total)

    def tensors(batch):
        stay_ids, x, y, mask, distinct = batch
        bad = [s for s in stay_ids if patient_of[s] in heldout_patients]
        if bad:
            raise LeakageError(f"{len(bad)} held-out stays in a training batch")
        return x, y, mask, distinct

    def loss_fn(train_model, part, step, micro):
        x, y, mask, distinct = (t.to(d.device, non_blocking=True) for t in part)
        with autocast(d.device, cfg.bf16):
            logits = train_model(x, distinct)
        return masked_bce(logits.float(), y, mask, pos_weight)

    def evaluate():
        probs = predict_dataset(model, val, d.device, cfg.batch_size, cfg.bf16, cfg.workers)
        return macro_auc(val.y > 0.5, val.mask, probs)[0]

    def finish(out) -> tuple[dict, dict]:
        summary = {"step": out.state.step, "finished": True, "stopped_early": out.stopped_early,
                   "best_val_macro_auc": out.state.best, "targets": len(targets), "train_stays": len(train),
                   "val_stays": len(val), "stays_without_windows_dropped": train.dropped + val.dropped,
                   "init": origin, "processes": d.world, "precision": precision(d.device, cfg.bf16),
                   "windows_per_s_last_session": out.windows_per_s}
        return summary, {"cohort": str(cohort.resolve()), "init": cfg.init}

    eval_every = max(1, per_epoch // cfg.evals_per_epoch)
    model.train()
    settings = LoopSettings(total=total, end=total, eval_every=eval_every, checkpoint_every=eval_every,
                            grad_accum=cfg.grad_accum, grad_clip=cfg.grad_clip, metric="val_macro_auc",
                            higher_is_better=True, patience=cfg.patience, desc="finetune", log_every=cfg.log_every)
    hooks = Hooks(loss=loss_fn, evaluate=evaluate, tensors=tensors,
                  after_step=lambda: {"lr_head": sched.get_last_lr()[0]})
    return Prepared(cfg=cfg, model=model, opt=opt, sched=sched, hooks=hooks, settings=settings,
                    batches=lambda step: train_batches(train, cfg.batch_size, cfg.seed, cfg.workers, d, step, total),
                    state=TrainState(step=0, best=-1.0), inputs=(profile, [str(store.path.resolve())]),
                    files={"targets.json": targets}, finish=finish)
