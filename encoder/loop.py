"""The one training loop of ``pretrain`` and ``finetune``, and the one batch loop of evaluation.

A plain loop in nanoGPT's manner: zero the gradients, accumulate micro-batches, clip, step the
optimiser and the schedule, log, evaluate and checkpoint on their cadence, stop early when the
validation metric has not improved for ``patience`` evaluations. What differs between the two
commands comes in as functions: the loss of a micro-batch, the evaluation, a hook after each
step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from phewas.progress import progress

from .data import identity_collate
from .distributed import Dist
from .checkpoints import save_checkpoint
from .runs import MetricsLog
from .sampler import ResumableBatches

log = logging.getLogger(__name__)


def wrap(model: torch.nn.Module, d: Dist, compile_model: bool) -> torch.nn.Module:
    """DistributedDataParallel across processes, then ``torch.compile`` if asked."""
    if d.world > 1:
        model = DDP(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    return torch.compile(model) if compile_model else model


def train_batches(dataset, cfg, d: Dist, step: int, total: int) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` for this rank from global step ``step`` on (exact resume)."""
    sampler = ResumableBatches(len(dataset), cfg.batch_size, cfg.seed, d.rank, d.world, start_step=step,
                               total_steps=total)
    # its own generator: creating the iterator must not draw from the global RNG (exact resume)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate,
                                       num_workers=cfg.workers, pin_memory=d.device.type == "cuda",
                                       generator=torch.Generator().manual_seed(cfg.seed + step))


def in_batches(dataset, batch: int) -> Iterator[tuple]:
    """``dataset.__getitems__`` over consecutive index ranges: evaluation's batch loop."""
    for a in range(0, len(dataset), batch):
        yield dataset.__getitems__(list(range(a, min(a + batch, len(dataset)))))


@dataclass
class Outcome:
    step: int
    best: float
    since_best: int
    stopped_early: bool
    windows_per_s: float


def fit(model, train_model, batches, opt, sched, *, d: Dist, run: Path, loss_fn: Callable, evaluate: Callable,
        metric: str, higher_is_better: bool, step: int, total: int, end: int, best: float, eval_every: int,
        checkpoint_every: int, grad_accum: int, grad_clip: float, patience: int | None = None,
        since_best: int = 0, extra: dict | None = None, tensors: Callable = tuple,
        after_step: Callable | None = None, desc: str = "train") -> Outcome:
    """Train from ``step`` until ``end`` (of ``total``) or an early stop.

    ``tensors(batch)`` gives a batch's tensors (and may check the batch); ``loss_fn(train_model,
    micro_batch)`` the loss of one micro-batch of them; ``after_step()`` the step's extra metrics
    (after the optimiser step); ``evaluate()`` the validation ``metric`` on rank 0. The best
    evaluation's weights go to ``checkpoints/best.pt``; ``checkpoints/last.pt`` is written every
    ``checkpoint_every`` steps, at ``end`` and at an early stop, with ``extra`` (and
    ``since_best`` when ``patience`` is set).
    """
    ckpt_dir = run / "checkpoints"
    metrics = MetricsLog(run, enabled=d.main)
    bar = progress(total=total, initial=step, desc=desc, unit="step", disable=None if d.main else True)
    t0, windows, stopped = time.perf_counter(), 0, False

    def state() -> dict:
        return {**(extra or {}), **({"since_best": since_best} if patience is not None else {})}

    for batch in batches:
        if step >= end:
            break
        batch = tensors(batch)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for part in zip(*(t.chunk(grad_accum) for t in batch)):  # micro-batches
            loss = loss_fn(train_model, part) / grad_accum
            loss.backward()
            loss_sum += float(loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
        opt.step()
        sched.step()
        step += 1
        windows += batch[0].shape[:-2].numel() * d.world  # [B, 1, L] pairs or [B, W, 1, L] stays
        bar.update()
        metrics.log(step, train_loss=loss_sum, grad_norm=grad_norm, **(after_step() if after_step else {}))
        at_eval = step % eval_every == 0 or step == total
        if d.main and at_eval:
            value = evaluate()
            metrics.log(step, **{metric: value}, windows_per_s=windows / (time.perf_counter() - t0))
            if value > best if higher_is_better else value < best:
                best, since_best = value, 0
                save_checkpoint(ckpt_dir / "best.pt", model=model, optimizer=opt, scheduler=sched, step=step,
                                best=best, extra=state())
            else:
                since_best += 1
            stopped = patience is not None and since_best >= patience
        if patience is not None and d.world > 1 and at_eval:  # every rank stops together
            flag = torch.tensor([int(stopped)], device=d.device if d.device.type == "cuda" else "cpu")
            torch.distributed.broadcast(flag, 0)
            stopped = bool(flag.item())
        if d.main and (step % checkpoint_every == 0 or step == end or stopped):
            save_checkpoint(ckpt_dir / "last.pt", model=model, optimizer=opt, scheduler=sched, step=step, best=best,
                            extra=state())
        if stopped:
            log.info("early stop at step %d: no better validation %s in %d evaluations", step, metric, patience)
            break
    bar.close()
    metrics.close()
    return Outcome(step, best, since_best, stopped, windows / max(time.perf_counter() - t0, 1e-9))


