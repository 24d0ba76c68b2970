"""The one training loop of ``pretrain`` and ``finetune``, and the one batch loop of evaluation.

A plain loop in nanoGPT's manner: zero the gradients, accumulate micro-batches, clip, step the
optimiser and the schedule, log, evaluate and checkpoint on their cadence, stop early when the
validation metric has not improved for ``patience`` evaluations. Its settings come as one record
(:class:`LoopSettings`), where the run stands as another (:class:`TrainState`), and what differs
between the two commands as functions (:class:`Hooks`: the loss of a micro-batch, the
evaluation, a hook after each step).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from phewas.base.progress import progress

from .checkpoints import save_checkpoint
from .data import identity_collate
from .distributed import Dist
from .runs import MetricsLog
from .sampler import ResumableBatches

log = logging.getLogger(__name__)


def wrap(model: torch.nn.Module, d: Dist, compile_model: bool) -> torch.nn.Module:
    """DistributedDataParallel across processes, then ``torch.compile`` if asked."""
    if d.world > 1:
        model = DDP(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    return torch.compile(model) if compile_model else model


def train_batches(dataset, global_batch: int, seed: int, workers: int, d: Dist, step: int, total: int
                  ) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` for this rank from global step ``step`` on (exact resume)."""
    sampler = ResumableBatches(len(dataset), global_batch, seed, d.rank, d.world, start_step=step,
                               total_steps=total)
    # its own generator: creating the iterator must not draw from the global RNG (exact resume)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate,
                                       num_workers=workers, pin_memory=d.device.type == "cuda",
                                       generator=torch.Generator().manual_seed(seed + step))


def in_batches(dataset, batch: int) -> Iterator[tuple]:
    """``dataset.__getitems__`` over consecutive index ranges: evaluation's batch loop."""
    for a in range(0, len(dataset), batch):
        yield dataset.__getitems__(list(range(a, min(a + batch, len(dataset)))))


@dataclass
class LoopSettings:
    """How the loop runs: its length, cadence, accumulation and stopping rule.

    ``end`` is where this invocation stops (``total`` unless a time-limited job asked for fewer
    steps); the best evaluation of ``metric`` (``higher_is_better``) goes to
    ``checkpoints/best.pt``; ``patience`` evaluations without a better one stop the run early
    (never, when None).
    """

    total: int
    end: int
    eval_every: int
    checkpoint_every: int
    grad_accum: int
    grad_clip: float
    metric: str
    higher_is_better: bool
    patience: int | None = None
    desc: str = "train"


@dataclass
class TrainState:
    """Where a run stands: what a checkpoint restores and the loop advances."""

    step: int
    best: float
    since_best: int = 0


@dataclass
class Hooks:
    """What differs between the commands that use the loop.

    ``loss(train_model, micro_batch, step, micro)``: the loss of micro-batch ``micro`` of the step
    that starts at ``step`` (steps done so far; a seed for its random draws); ``evaluate()``: the
    validation metric on rank 0; ``tensors(batch)``: a batch's tensors (it may check the batch);
    ``after_step()``: the step's extra metrics, after the optimiser step.
    """

    loss: Callable
    evaluate: Callable
    tensors: Callable = tuple
    after_step: Callable | None = None


@dataclass
class Outcome:
    state: TrainState
    stopped_early: bool
    windows_per_s: float


def fit(model, train_model, batches, opt, sched, *, d: Dist, run: Path, hooks: Hooks, settings: LoopSettings,
        state: TrainState, extra: dict | None = None) -> Outcome:
    """Train from ``state.step`` until ``settings.end`` or an early stop.

    ``train_model`` is ``model`` as wrapped for training (:func:`wrap`). ``checkpoints/last.pt`` is
    written every ``checkpoint_every`` steps, at ``end`` and at an early stop, with ``extra`` (and
    ``since_best`` when there is a patience).
    """
    cfg, ckpt_dir = settings, run / "checkpoints"
    step, best, since_best = state.step, state.best, state.since_best
    metrics = MetricsLog(run, enabled=d.main)
    bar = progress(total=cfg.total, initial=step, desc=cfg.desc, unit="step", disable=None if d.main else True)
    t0, windows, stopped = time.perf_counter(), 0, False

    def checkpoint_state() -> dict:
        return {**(extra or {}), **({"since_best": since_best} if cfg.patience is not None else {})}

    for batch in batches:
        if step >= cfg.end:
            break
        batch = hooks.tensors(batch)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for micro, part in enumerate(zip(*(t.chunk(cfg.grad_accum) for t in batch))):  # micro-batches
            loss = hooks.loss(train_model, part, step, micro) / cfg.grad_accum
            loss.backward()
            loss_sum += float(loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        sched.step()
        step += 1
        windows += batch[0].shape[:-2].numel() * d.world  # [B, 1, L] pairs or [B, W, 1, L] stays
        bar.update()
        metrics.log(step, train_loss=loss_sum, grad_norm=grad_norm, **(hooks.after_step() if hooks.after_step else {}))
        at_eval = step % cfg.eval_every == 0 or step == cfg.total
        if d.main and at_eval:
            value = hooks.evaluate()
            metrics.log(step, **{cfg.metric: value}, windows_per_s=windows / (time.perf_counter() - t0))
            if value > best if cfg.higher_is_better else value < best:
                best, since_best = value, 0
                save_checkpoint(ckpt_dir / "best.pt", model=model, optimizer=opt, scheduler=sched, step=step,
                                best=best, extra=checkpoint_state())
            else:
                since_best += 1
            stopped = cfg.patience is not None and since_best >= cfg.patience
        if cfg.patience is not None and d.world > 1 and at_eval:  # every rank stops together
            flag = torch.tensor([int(stopped)], device=d.device if d.device.type == "cuda" else "cpu")
            torch.distributed.broadcast(flag, 0)
            stopped = bool(flag.item())
        if d.main and (step % cfg.checkpoint_every == 0 or step == cfg.end or stopped):
            save_checkpoint(ckpt_dir / "last.pt", model=model, optimizer=opt, scheduler=sched, step=step, best=best,
                            extra=checkpoint_state())
        if stopped:
            log.info("early stop at step %d: no better validation %s in %d evaluations", step, cfg.metric,
                     cfg.patience)
            break
    bar.close()
    metrics.close()
    return Outcome(TrainState(step, best, since_best), stopped, windows / max(time.perf_counter() - t0, 1e-9))
