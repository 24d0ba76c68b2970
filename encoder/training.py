"""One training run, for pretraining and fine-tuning alike: set-up, the run folder, resume, the
loop, finish.

A command describes its run by a ``prepare(session)`` function that builds a :class:`Prepared`
run (models, data, optimiser, the loop's hooks and settings, and how a finished run is finished);
:func:`train_run` checks the run folder (:func:`encoder.runs.launch`), lets it appear once the
set-up has worked, writes ``config.json`` and ``inputs.json``, resumes from
``checkpoints/last.pt``, runs the loop (:func:`encoder.loop.fit`) and writes the finished run's
manifest. A new objective is an entry of :data:`encoder.objectives.OBJECTIVES`; a new training
command is its ``prepare``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from phewas.base.io import write_json, write_manifest

from .checkpoints import load_checkpoint
from .distributed import seed_ranks
from .loop import Hooks, LoopSettings, Outcome, TrainState, fit, wrap
from .runs import RunResult, Session, launch, write_inputs

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A run set up, before its folder appears.

    ``cfg``: the settings as ``config.json`` records them (with the architecture trained);
    ``batches(step)``: the training batches from ``step``; ``files``: JSON files written beside
    ``config.json`` at the start; ``inputs``: the windows' profile and stores (``inputs.json``);
    ``sync_bn``: batch norm over every process's batch; ``extra``: saved with every checkpoint;
    ``finish(outcome)``: on rank 0 of a finished run, what it leaves beside its checkpoints, and
    ``(summary, manifest inputs)``.
    """

    cfg: object
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object
    batches: Callable[[int], Iterator]
    hooks: Hooks
    settings: LoopSettings
    state: TrainState
    inputs: tuple[str, list[str]]
    finish: Callable[[Outcome], tuple[dict, dict]]
    files: dict = field(default_factory=dict)
    sync_bn: bool = False
    extra: dict | None = None


def train_run(command: str, prepare: Callable[[Session], Prepared], cohort, run, cfg, *, resume: bool,
              overwrite: bool, stop_after_steps: int | None) -> RunResult:
    """Run ``command`` (``pretrain``, ``finetune``) as ``prepare`` sets it up.

    Nothing is written to ``run`` until ``prepare`` has returned; a run stopped before its end
    (``stop_after_steps``) is not finished and continues with ``resume``; the run is finished at
    its last step or when the loop's stopping rule ends it early.
    """

    def body(session: Session, started: Callable[[], Path]) -> RunResult:
        p = prepare(session)
        d, run = session.d, session.run
        ckpt_dir = run / "checkpoints"
        started()  # set-up worked: the run folder appears (or replaces the old one, with --force)
        if d.main:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            write_json(run / "config.json", asdict(p.cfg))
            for name, content in p.files.items():
                write_json(run / name, content)
            write_inputs(run, *p.inputs)
        state = p.state
        if session.resume and (ckpt_dir / "last.pt").exists():
            seed = p.cfg.seed
            saved = load_checkpoint(ckpt_dir / "last.pt", model=p.model, optimizer=p.opt, scheduler=p.sched,
                                    rank=d.rank, world=d.world, reseed=lambda step: seed_ranks(seed + step, d.rank))
            state = TrainState(step=saved["step"], best=saved["best"], since_best=int(saved.get("since_best", 0)))
            log.info("resumed at step %d", state.step)
        total = p.settings.total
        end = total if session.stop_after_steps is None else min(total, state.step + session.stop_after_steps)
        out = fit(p.model, wrap(p.model, d, p.cfg.compile, p.sync_bn), p.batches(state.step), p.opt, p.sched, d=d,
                  run=run, hooks=p.hooks, settings=replace(p.settings, end=end), state=state, extra=p.extra)
        step = out.state.step
        if not (out.stopped_early or step >= total):
            return RunResult(step, finished=False, main=d.main)
        if not d.main:
            return RunResult(step, finished=True, main=False)
        summary, inputs = p.finish(out)
        write_manifest(run, command=command, inputs=inputs, parameters=asdict(p.cfg), summary=summary)
        return RunResult(step, finished=True, summary=summary)

    return launch(body, cohort, run, cfg, resume=resume, overwrite=overwrite, stop_after_steps=stop_after_steps)
