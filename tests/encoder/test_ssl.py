"""SimCLR and BYOL pretraining (the AnyPPG paper's baselines on PPG alone): their losses against
slow, obvious computations, their augmentations reproducible, the loss falling on simulated
windows, a resumed run bit-exact, and a released model's weights as the starting point."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from encoder.checkpoints import load_anyppg
from encoder.config import pretrain_config as make_config
from encoder.pretrain import pretrain
from encoder.ssl import BYOL, byol_loss, nt_xent, two_views
from phewas.cli import main


def losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train_loss"] for r in rows if "train_loss" in r}


def test_nt_xent_equals_its_definition():
    rng = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=rng), torch.randn(5, 8, generator=rng)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    t, total = 0.07, 0.0
    for i in range(10):  # -log( exp(s_ip / t) / sum_{k != i} exp(s_ik / t) ), averaged
        pos = (i + 5) % 10
        others = [k for k in range(10) if k != i]
        total += -(z[i] @ z[pos] / t - torch.logsumexp(torch.stack([z[i] @ z[k] / t for k in others]), 0))
    assert float(nt_xent(z1, z2, t, gather=False)) == pytest.approx(float(total / 10), rel=1e-5)


def test_byol_loss_and_target_update():
    p = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    z = [torch.tensor([[0.0, 2.0]]), torch.tensor([[3.0, 0.0]])]
    assert float(byol_loss(p, z)) == pytest.approx(0.0)  # each prediction points at the other view's target
    assert float(byol_loss(p, [z[1], z[0]])) == pytest.approx(2.0)  # orthogonal
    enc = torch.nn.Linear(4, 3)
    enc.out_dim = 3
    model = BYOL(enc, embed_dim=2, hidden=8, decay=0.9)
    with torch.no_grad():
        model.ppg_encoder.weight.add_(1.0)
    before = model.target_encoder.weight.clone()
    model.update_target()
    torch.testing.assert_close(model.target_encoder.weight, 0.9 * before + 0.1 * model.ppg_encoder.weight.detach())
    assert not any(p.requires_grad for p in model.target_encoder.parameters())


def test_augmented_views_are_reproducible_and_differ():
    x = torch.randn(4, 1, 1250, generator=torch.Generator().manual_seed(1))
    a1, a2 = two_views(x, (0, 5, 0, 0))
    b1, b2 = two_views(x, (0, 5, 0, 0))
    c1, _ = two_views(x, (0, 6, 0, 0))
    assert a1.shape == (4, 1, 1250) and torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2) and not torch.equal(a1, c1)


def tiny(**kw):
    base = dict(steps=6, batch_size=16, eval_every=3, checkpoint_every=3, retrieval_batch=8, warmup_steps=2,
                log_every=1)  # every step's loss logged: the resume tests compare them
    return make_config("demo", **{**base, **kw})


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["simclr", "byol"])
def test_loss_falls_and_a_resumed_run_is_bit_exact(sim_store, sim_cohort, tmp_path, objective):
    full = tmp_path / "full"
    s = pretrain(sim_cohort, full, tiny(objective=objective, steps=40, eval_every=20, checkpoint_every=20,
                                        lr=3e-3))
    curve = losses(full)
    assert np.mean([curve[k] for k in range(31, 41)]) < np.mean([curve[k] for k in range(1, 11)]), curve
    assert s.summary["objective"] == objective and s.summary["retrieval"] is None
    load_anyppg(full / "ppg_encoder.pth", make_config("demo").ppg)  # the online encoder, AnyPPG format
    short = tmp_path / "short"
    pretrain(sim_cohort, short, tiny(objective=objective))
    killed = tmp_path / "killed"
    pretrain(sim_cohort, killed, tiny(objective=objective), stop_after_steps=3)
    pretrain(sim_cohort, killed, tiny(objective=objective), resume=True)
    a, b = losses(short), losses(killed)
    for step in range(4, 7):
        assert a[step] == b[step], (step, a[step], b[step])


@pytest.mark.slow
def test_pretraining_starts_from_a_released_model(sim_store, sim_cohort, tmp_path):
    from helpers import released_file
    papagei = released_file(tmp_path, "papagei-p")
    run = tmp_path / "run"
    rc = main(["pretrain", "--cohort", str(sim_cohort), "--out", str(run), "--preset", "demo", "--steps", "2",
               "--batch-size", "16", "--objective", "simclr", "--init", str(papagei), "--quiet"])
    assert rc == 0
    config = json.loads((run / "config.json").read_text())
    assert config["ppg"]["family"] == "papagei" and config["objective"] == "simclr"
    model, desc = __import__("encoder.embed", fromlist=["load_encoder"]).load_encoder(str(run))
    assert desc["kind"] == "pretraining run" and model(torch.zeros(1, 1, 1250)).shape == (1, 512)
