"""The ``anyppg`` pretraining recipe against the AnyPPG release's own code
(``tests/fixtures/anyppg_release/make_fixtures.py`` ran its ``CLIP``, ``loss.py``, optimiser and
its scheduler as ``main.py`` and accelerate build them): the learning rate at every step, and the
loss of the first training steps on the same weights and batches."""

from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.config import Net1DConfig, pretrain_config
from encoder.net1d import Net1D
from encoder.objectives import OBJECTIVES
from encoder.optim import param_groups
from encoder.pretrain import schedule, steps_per_epoch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "anyppg_release"


def test_the_recipe_is_the_release_scripts():
    cfg = pretrain_config("study")
    assert (cfg.recipe, cfg.lr, cfg.betas, cfg.weight_decay, cfg.decay_all) == ("anyppg", 4e-4, (0.9, 0.999), 0.01,
                                                                                True)
    assert (cfg.epochs, cfg.steps, cfg.device_batch, cfg.chunk_size, cfg.loss_scope) == (5, None, 2048, 512, "device")
    assert (cfg.warmup_steps, cfg.schedule_ticks, cfg.head_dropout, cfg.clamp_temperature, cfg.seed, cfg.keep) == (
        5000, "world", 0.0, False, 42, "last")
    today = pretrain_config("study", recipe="phewas")
    assert (today.lr, today.batch_size, today.steps, today.loss_scope, today.head_dropout) == (3e-4, 256, 20000,
                                                                                              "global", 0.2)
    # a flag for one of two ways of saying a length or a batch clears the recipe's other one
    cfg = pretrain_config("study", steps=100, batch_size=64, chunk_size=16)
    assert (cfg.steps, cfg.epochs, cfg.batch_size, cfg.device_batch) == (100, None, 64, None)


@pytest.mark.parametrize("world", [1, 4, 8])
def test_learning_rate_at_every_step_is_the_release_schedulers(world):
    ref = np.load(FIXTURES / "schedule.npz")
    cfg = pretrain_config("study")
    n = int(ref["global_batches"]) * 4 * 512  # 3,000 batches of four full chunks
    per_epoch, batches = steps_per_epoch(n, cfg, world)
    assert batches == ref["global_batches"] and per_epoch == -(-batches // world)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = schedule(opt, cfg, cfg.epochs * per_epoch, batches, world)
    lrs = []
    for _ in range(cfg.epochs * per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, ref[f"lr_world{world}"], rtol=0, atol=1e-15)


def our_clip(state: dict, small: dict):
    """Our CLIP model of the fixture's widths, with the release model's weights."""
    cfg = pretrain_config("study", ppg=Net1DConfig(**small), ecg=Net1DConfig(**small, kernel_size=16, dropout=0.0),
                          bf16=False)
    ecg = Net1D(cfg.ecg)
    names = {"ppg_projector.": "ppg_head.net.", "ecg_projector.": "ecg_head.net.", "clip_loss.": ""}
    mapped = {}
    for k, v in state.items():
        for a, b in names.items():
            k = k.replace(a, b) if k.startswith(a) else k
        mapped[k] = v
    model = OBJECTIVES["clip"].build(Net1D(cfg.ppg), cfg, ecg, cfg.ecg.out_dim)
    for p in model.ecg_encoder.parameters():
        p.requires_grad_(False)
    model.load_state_dict(mapped, strict=True)
    return model, cfg


def test_first_training_steps_are_the_releases():
    import json
    ref = np.load(FIXTURES / "clip.npz")
    small = json.loads((FIXTURES / "fixtures.json").read_text())["clip"]["config"]
    model, cfg = our_clip(torch.load(FIXTURES / "clip_init.pt", weights_only=True), small)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay, base_lr=cfg.lr, decay_all=cfg.decay_all),
                            lr=cfg.lr, betas=cfg.betas)
    from encoder.optim import release_cosine
    sched = release_cosine(opt, cfg.warmup_steps, 15000, 4)  # 4 processes, as the fixture's
    ppg, ecg = torch.from_numpy(ref["ppg"]), torch.from_numpy(ref["ecg"])
    objective = OBJECTIVES["clip"]
    torch.manual_seed(42)
    model.train()
    model.ecg_encoder.eval()
    losses, lrs, temps = [], [], []
    for step in range(3):
        part = (ppg[8 * step:8 * step + 8], ecg[8 * step:8 * step + 8])
        lrs.append(opt.param_groups[0]["lr"])
        loss = objective.loss(model, part, cfg, torch.device("cpu"), False, (cfg.seed, step, 0, 0))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
        temps.append(float(objective.after_step(model, cfg)["temperature"]))
    np.testing.assert_allclose(losses, ref["loss"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(lrs, ref["lr"], rtol=0, atol=1e-15)
    # the temperature decayed and unclamped, as theirs
    assert abs(float(model.logit_scale.detach()) - float(ref["final_logit_scale"])) < 1e-6


def test_clip_without_an_ecg_checkpoint_names_the_flag_that_allows_it(sim_cohort, tmp_path, capsys):
    from helpers import one_line_error
    one_line_error(["pretrain", "--cohort", sim_cohort, "--out", tmp_path / "run"], capsys, "--ecg-checkpoint",
                   "--ecg-from-scratch")
    assert not (tmp_path / "run").exists()
    one_line_error(["pretrain", "--cohort", sim_cohort, "--out", tmp_path / "run", "--preset", "demo",
                    "--chunk-size", "16", "--loss-scope", "global"], capsys, "--chunk-size", "--loss-scope device")
