"""The one training-run routine (encoder.training) with a tiny fake job: nothing written before
the set-up returns, the run's files at the start, a stopped run resumed to the weights of an
uninterrupted one, the finish called once on a finished run, settings refused on resume."""

from dataclasses import dataclass, field

import pytest
import torch

from encoder.loop import Hooks, LoopSettings, TrainState
from encoder.training import Prepared, train_run
from phewas.base.errors import PhewasError, SettingError


@dataclass
class TinyConfig:
    seed: int = 0
    lr: float = 0.1
    device: str = "cpu"
    dist_timeout: float = 1.0
    deterministic: bool = False
    compile: bool = False
    workers: int = 0
    steps: int = 6
    note: list = field(default_factory=list)


def tiny_job(cfg: TinyConfig, finished: list, fail: bool = False):
    """A linear regression on fixed data, with the loop's checkpoints every two steps."""

    def prepare(session):
        if fail:
            raise PhewasError("set-up failed")
        torch.manual_seed(cfg.seed)
        x = torch.randn(64, 1, 4)
        y = x.sum(-1, keepdim=True) * 2.0
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)

        def batches(step):
            for k in range(step, cfg.steps):
                i = torch.arange(8) + 8 * (k % 8)
                yield x[i], y[i]

        def loss(train_model, part, step, micro):
            xb, yb = part
            return torch.nn.functional.mse_loss(train_model(xb), yb)

        def evaluate():
            with torch.no_grad():
                return float(torch.nn.functional.mse_loss(model(x), y))

        def finish(out):
            finished.append(out.state.step)
            return {"step": out.state.step, "weight": model.weight.detach().tolist()}, {"data": "fixed"}

        settings = LoopSettings(total=cfg.steps, end=cfg.steps, eval_every=2, checkpoint_every=2, grad_accum=1,
                                grad_clip=10.0, metric="val_loss", higher_is_better=False, desc="tiny")
        return Prepared(cfg=cfg, model=model, opt=opt, sched=sched, batches=batches, hooks=Hooks(loss, evaluate),
                        settings=settings, state=TrainState(step=0, best=float("inf")), inputs=("anyppg", ["store"]),
                        finish=finish, files={"targets.json": ["a", "b"]})

    return prepare


def run(cfg, out, finished, **kw):
    kw = {"resume": False, "overwrite": False, "stop_after_steps": None} | kw
    return train_run("tiny", tiny_job(cfg, finished, kw.pop("fail", False)), None, out, cfg, **kw)


def test_a_failed_set_up_leaves_no_run_folder(tmp_path):
    with pytest.raises(PhewasError, match="set-up failed"):
        run(TinyConfig(), tmp_path / "run", [], fail=True)
    assert not (tmp_path / "run").exists()


def test_a_stopped_run_resumes_to_the_uninterrupted_weights(tmp_path):
    import json

    whole, parts = [], []
    done = run(TinyConfig(), tmp_path / "whole", whole)
    assert done.finished and whole == [6]
    first = run(TinyConfig(), tmp_path / "parts", parts, stop_after_steps=3)
    assert not first.finished and first.step == 3 and parts == []  # no finish before the end
    assert not (tmp_path / "parts" / "manifest.json").exists()
    assert json.loads((tmp_path / "parts" / "targets.json").read_text()) == ["a", "b"]
    assert json.loads((tmp_path / "parts" / "inputs.json").read_text())["preprocess"] == "anyppg"
    assert json.loads((tmp_path / "parts" / "config.json").read_text())["steps"] == 6
    second = run(TinyConfig(), tmp_path / "parts", parts, resume=True)
    assert second.finished and parts == [6]
    assert second.summary["weight"] == done.summary["weight"]
    manifest = json.loads((tmp_path / "parts" / "manifest.json").read_text())
    assert manifest["command"] == "tiny" and manifest["inputs"] == {"data": "fixed"}


def test_resume_refuses_changed_settings_and_an_existing_run_without_force(tmp_path):
    run(TinyConfig(), tmp_path / "run", [], stop_after_steps=2)
    with pytest.raises(SettingError, match="lr: 0.1 -> 0.2"):
        run(TinyConfig(lr=0.2), tmp_path / "run", [], resume=True)
    with pytest.raises(PhewasError, match="exists already"):
        run(TinyConfig(), tmp_path / "run", [])
    assert run(TinyConfig(), tmp_path / "run", [], overwrite=True).finished


def test_every_objective_setting_has_its_code_and_nothing_else():
    from encoder.config import OBJECTIVE_NAMES
    from encoder.objectives import OBJECTIVES
    assert tuple(OBJECTIVES) == OBJECTIVE_NAMES
