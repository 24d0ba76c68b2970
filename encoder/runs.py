"""Run folders: refusing or replacing them, settings on ``--resume``, batch checks, metrics."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch.distributed as dist

from phewas.base.errors import InputError, OutputExistsError, PhewasError, SettingError
from phewas.base.io import make_parent

from .config import SPEED_ONLY
from .distributed import Dist, cleanup_distributed, configure_backends, setup_distributed
from .families import architecture_from_dict


@dataclass
class RunResult:
    """What ``pretrain`` and ``finetune`` return.

    ``finished``: the run reached its end (or stopped early by its rule); False when this
    invocation stopped before (``--stop-after-steps``): continue with ``--resume``. ``main``:
    False on the other processes of a ``torchrun`` job (rank 0 reports). ``summary``: the
    finished run's figures, as its manifest records them.
    """

    step: int
    finished: bool
    main: bool = True
    summary: dict = field(default_factory=dict)


def changed_settings(saved: dict, now: dict) -> list[str]:
    """``key: old -> new`` for every setting but the speed-only ones that differs."""
    norm = lambda d: json.loads(json.dumps(d, default=str))  # noqa: E731 (tuples vs lists)
    saved, now = norm(saved), norm(now)
    return [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
            if k not in SPEED_ONLY and saved.get(k) != now.get(k)]


@dataclass
class Session:
    """One invocation of a training command, as its set-up sees it: ``cohort`` (None for
    pretraining on pair stores alone), the ``run`` folder, the process group ``d``, whether it
    resumes, and where it stops early (``--stop-after-steps``)."""

    cohort: Path | None
    run: Path
    d: Dist
    resume: bool
    stop_after_steps: int | None


def launch(body, cohort, run, cfg, *, resume: bool, overwrite: bool, stop_after_steps):
    """Check the run folder, set up the process group, call ``body(session, started)`` (a
    :class:`Session`) and tear down, for pretraining and fine-tuning alike.

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
    d = setup_distributed(cfg.device, cfg.dist_timeout)
    configure_backends(cfg.deterministic)

    def started() -> Path:
        if resume and (run / "config.json").exists():
            saved = json.loads((run / "config.json").read_text())
            for key in ("ppg", "ecg"):  # encoder settings as this version writes them
                if isinstance(saved.get(key), dict):
                    saved[key] = architecture_from_dict(saved[key]).to_dict()
            for f in fields(cfg):  # settings added since the run began: their defaults, as it trained
                if f.name not in saved and f.default is not MISSING:
                    saved[f.name] = f.default
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

    session = Session(None if cohort is None else Path(cohort), run, d, resume, stop_after_steps)
    try:
        return body(session, started)
    finally:
        cleanup_distributed()


INPUTS = "inputs.json"  # a run's data: the preprocessing profile of the windows it was trained on


def write_inputs(run: Path, profile: str, stores: list[str]) -> None:
    """Record the windows a run trains on: their profile and the stores they came from."""
    from phewas.base.io import write_json
    write_json(Path(run) / INPUTS, {"preprocess": profile, "stores": stores})


def run_profile(run: Path) -> str:
    """The preprocessing profile of the windows ``run`` was trained on (runs made before profiles
    existed: ``robust``)."""
    path = Path(run) / INPUTS
    return json.loads(path.read_text())["preprocess"] if path.exists() else "robust"


def init_profile(init: str | None) -> dict:
    """``{run: profile}`` when ``--init`` names a training run (whose windows a new run must share),
    else nothing."""
    return {init: run_profile(Path(init))} if init and Path(init).is_dir() else {}


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


class MetricsLog:
    """JSON lines (``metrics.jsonl``) and TensorBoard event files, written by rank 0 only."""

    def __init__(self, folder: Path, enabled: bool = True):
        self.enabled = enabled
        if enabled:
            from torch.utils.tensorboard import SummaryWriter
            self.file = open(folder / "metrics.jsonl", "a")  # noqa: SIM115 - open for the run, closed by close()
            self.tb = SummaryWriter(str(folder / "tensorboard"))

    def log(self, step: int, **values) -> None:
        if not self.enabled:
            return
        values = {k: v.item() if hasattr(v, "item") else v for k, v in values.items()}  # tensors read here
        self.file.write(json.dumps({"step": step, **values}) + "\n")
        self.file.flush()
        for k, v in values.items():
            if isinstance(v, (int, float)):
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.tb.close()
