"""The one training loop of ``pretrain`` and ``finetune``, and the batch loops of evaluation.

A plain loop in nanoGPT's manner: zero the gradients, accumulate micro-batches (DDP's gradient
all-reduce only on the last), clip, step the optimiser and the schedule, log, evaluate and
checkpoint on their cadence, stop early when the validation metric has not improved for
``patience`` evaluations. Its settings come as one record (:class:`LoopSettings`), where the run
stands as another (:class:`TrainState`), and what differs between the two commands as functions
(:class:`Hooks`: the loss of a micro-batch, the evaluation, a hook after each step).

The host waits for the device only at logging steps (every ``log_every``): the loss and gradient
norm stay tensors in between, and a loss that is not finite stops the run there, with a message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from phewas.base.errors import PhewasError
from phewas.base.progress import progress

from .checkpoints import rng_states, save_checkpoint
from .data import identity_collate
from .distributed import Dist
from .runs import MetricsLog
from .sampler import ResumableBatches

log = logging.getLogger(__name__)


def wrap(model: torch.nn.Module, d: Dist, compile_model: bool, sync_bn: bool = False) -> torch.nn.Module:
    """DistributedDataParallel across processes (batch norm synchronised across them when
    ``sync_bn``), then ``torch.compile`` if asked. With ``sync_bn`` the model's own batch-norm
    layers are replaced in place, so ``model`` and the wrapped one share them."""
    if d.world > 1:
        if sync_bn:
            _convert_sync_bn(model)
        model = DDP(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    return torch.compile(model) if compile_model else model


def _convert_sync_bn(module: torch.nn.Module) -> None:
    """``SyncBatchNorm.convert_sync_batchnorm`` in place: every trainable batch norm becomes a
    synchronised one (frozen ones, in eval mode, keep their running statistics)."""
    for name, child in module.named_children():
        trainable = any(p.requires_grad for p in child.parameters())
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and trainable:
            setattr(module, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            _convert_sync_bn(child)


def train_batches(dataset, global_batch: int, seed: int, workers: int, d: Dist, step: int, total: int
                  ) -> torch.utils.data.DataLoader:
    """Batches of ``dataset`` for this rank from global step ``step`` on (exact resume)."""
    sampler = ResumableBatches(len(dataset), global_batch, seed, d.rank, d.world, start_step=step,
                               total_steps=total)
    # its own generator: creating the iterator must not draw from the global RNG (exact resume)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate,
                                       num_workers=workers, pin_memory=d.device.type == "cuda",
                                       generator=torch.Generator().manual_seed(seed + step))


class _Consecutive(torch.utils.data.Sampler):
    def __init__(self, n: int, batch: int):
        self.n, self.batch = n, batch

    def __iter__(self):
        for a in range(0, self.n, self.batch):
            yield list(range(a, min(a + self.batch, self.n)))

    def __len__(self):
        return -(-self.n // self.batch)


def in_batches(dataset, batch: int, workers: int = 0, pin: bool = False) -> Iterator[tuple]:
    """``dataset.__getitems__`` over consecutive index ranges, in order: evaluation's and
    prediction's batch loop, fed by ``workers`` processes (pinned for a GPU) when given."""
    if workers == 0 and not pin:
        for a in range(0, len(dataset), batch):
            yield dataset.__getitems__(list(range(a, min(a + batch, len(dataset)))))
        return
    yield from torch.utils.data.DataLoader(dataset, batch_sampler=_Consecutive(len(dataset), batch),
                                           collate_fn=identity_collate, num_workers=workers, pin_memory=pin)


@dataclass
class LoopSettings:
    """How the loop runs: its length, cadence, accumulation and stopping rule.

    ``end`` is where this invocation stops (``total`` unless a time-limited job asked for fewer
    steps); the best evaluation of ``metric`` (``higher_is_better``) goes to
    ``checkpoints/best.pt``; ``patience`` evaluations without a better one stop the run early
    (never, when None); ``log_every``: steps between logged metrics (and the host's only waits
    for the device).
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
    log_every: int = 1


@dataclass
class TrainState:
    """Where a run stands: what a checkpoint restores and the loop advances."""

    step: int
    best: float
    since_best: int = 0


@dataclass
class Hooks:
    """What differs between the commands that use the loop.

    ``loss(train_model, micro_batch, step, micro)``: the float32 loss of micro-batch ``micro`` of
    the step that starts at ``step`` (steps done so far: a seed for its random draws);
    ``evaluate()``: the validation metric on rank 0; ``tensors(batch)``: a batch's tensors (it may
    check the batch); ``after_step()``: the step's extra metrics (tensors are read only when
    logged), after the optimiser step.
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
    ``since_best`` when there is a patience); every rank's random-number states go with it.
    ``windows_per_s`` leaves out the first step (compilation, warm-up).
    """
    cfg, ckpt_dir = settings, run / "checkpoints"
    step, best, since_best = state.step, state.best, state.since_best
    metrics = MetricsLog(run, enabled=d.main)
    bar = progress(total=cfg.total, initial=step, desc=cfg.desc, unit="step", disable=None if d.main else True)
    t0, windows, stopped = None, 0, False
    pending: list = []  # losses since the last log, as tensors
    ddp = isinstance(getattr(train_model, "_orig_mod", train_model), DDP)

    def checkpoint_state() -> dict:
        return {**(extra or {}), **({"since_best": since_best} if cfg.patience is not None else {})}

    for batch in batches:
        if step >= cfg.end:
            break
        batch = hooks.tensors(batch)
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        parts = list(zip(*(t.chunk(cfg.grad_accum) for t in batch)))  # micro-batches
        for micro, part in enumerate(parts):
            last = micro == len(parts) - 1
            # gradients are all-reduced once, on the last micro-batch
            sync = contextlib.nullcontext() if last or not ddp else getattr(train_model, "_orig_mod",
                                                                            train_model).no_sync()
            with sync:
                loss = hooks.loss(train_model, part, step, micro) / cfg.grad_accum
                loss.backward()
            loss_sum = loss_sum + loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        step += 1
        if t0 is None:  # throughput from the end of the first step: compilation and warm-up left out
            t0 = time.perf_counter()
        else:
            windows += batch[0].shape[:-2].numel() * d.world  # [B, 1, L] pairs or [B, W, 1, L] stays
        bar.update()
        pending.append(loss_sum)
        extra_metrics = hooks.after_step() if hooks.after_step else {}
        at_eval = step % cfg.eval_every == 0 or step == cfg.total
        at_ckpt = step % cfg.checkpoint_every == 0 or step == cfg.end
        if step % cfg.log_every == 0 or at_eval or at_ckpt or step == cfg.end:
            losses = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x in pending]).cpu()
            pending = []
            if not torch.isfinite(losses).all():
                bad = step - len(losses) + int(torch.nonzero(~torch.isfinite(losses))[0])
                raise PhewasError(f"the training loss is not finite at step {bad}; the run stops (its last "
                                  "checkpoint is kept): lower --lr, or check the inputs for non-finite windows")
            metrics.log(step, train_loss=float(losses.mean()), grad_norm=grad_norm, **extra_metrics)
        rng = rng_states(d) if at_eval or at_ckpt else None  # a collective: every rank, the same steps
        if d.main and at_eval:
            value = hooks.evaluate()
            rate = windows / (time.perf_counter() - t0) if windows else float("nan")
            metrics.log(step, **{cfg.metric: value}, windows_per_s=rate)
            if value > best if cfg.higher_is_better else value < best:
                best, since_best = value, 0
                save_checkpoint(ckpt_dir / "best.pt", model=model, optimizer=opt, scheduler=sched, step=step,
                                best=best, extra=checkpoint_state(), rng=rng)
            else:
                since_best += 1
            stopped = cfg.patience is not None and since_best >= cfg.patience
        if cfg.patience is not None and d.world > 1 and at_eval:  # every rank stops together
            flag = torch.tensor([int(stopped)], device=d.device if d.device.type == "cuda" else "cpu")
            torch.distributed.broadcast(flag, 0)
            stopped = bool(flag.item())
        if d.main and (at_ckpt or stopped):
            save_checkpoint(ckpt_dir / "last.pt", model=model, optimizer=opt, scheduler=sched, step=step, best=best,
                            extra=checkpoint_state(), rng=rng if rng is not None else rng_states())
        if stopped:
            log.info("early stop at step %d: no better validation %s in %d evaluations", step, cfg.metric,
                     cfg.patience)
            break
    bar.close()
    metrics.close()
    elapsed = time.perf_counter() - t0 if t0 is not None else 0.0
    return Outcome(TrainState(step, best, since_best), stopped, windows / elapsed if windows and elapsed else 0.0)
