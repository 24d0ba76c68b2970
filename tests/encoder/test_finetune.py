import json
import shutil

import numpy as np
import polars as pl
import pytest
import torch

import encoder.finetune as ftm
from encoder.checkpoints import initial_encoder
from encoder.config import Net1DConfig
from encoder.config import finetune_config as make_config
from encoder.finetune import finetune
from encoder.heads import StayClassifier, masked_bce
from encoder.net1d import Net1D
from phewas.base.errors import InputError, PhewasError
from phewas.cli import main

SMALL = Net1DConfig(base_filters=16, filter_list=[16, 32], m_blocks_list=[1, 1], dropout=0.1)


def tiny(**kw):
    base = dict(ppg=SMALL, segments_per_stay=4, min_train_positives=3, batch_size=8, epochs=2, warmup_steps=2,
                evals_per_epoch=2, patience=10, log_every=1)
    return make_config("demo", **{**base, **kw})


def test_masked_bce_ignores_null_labels():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float32)
    mask = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=torch.bool)
    loss = masked_bce(logits, y, mask)
    loss.backward()
    assert torch.all(logits.grad[~mask] == 0) and torch.all(logits.grad[mask] != 0)
    manual = np.mean([float(torch.nn.functional.binary_cross_entropy_with_logits(logits[i, j].detach(), y[i, j]))
                      for i in range(4) for j in range(3) if mask[i, j]])
    assert abs(float(loss.detach()) - manual) < 1e-6
    # flipping a masked label changes nothing
    y2 = y.clone()
    y2[0, 1] = 1 - y2[0, 1]
    assert float(masked_bce(logits.detach(), y2, mask)) == float(loss.detach())


@pytest.mark.parametrize("aggregation", ["mean_logits", "mean_embedding", "attention"])
def test_aggregation_shape_and_permutation_invariance(aggregation):
    torch.manual_seed(0)
    m = StayClassifier(Net1D(SMALL), 5, aggregation).eval()
    x = torch.randn(3, 6, 1, 1250)
    with torch.no_grad():
        out = m(x)
        perm = m(x[:, torch.randperm(6)])
    assert out.shape == (3, 5)
    torch.testing.assert_close(out, perm, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("aggregation", ["mean_logits", "mean_embedding", "attention"])
def test_repeated_windows_weigh_as_one(aggregation):
    """A stay with 3 windows, repeated cyclically to fill 8 slots, equals the stay's 3 windows
    alone: each counts 1/3, not 3/8, 3/8, 2/8."""
    torch.manual_seed(0)
    m = StayClassifier(Net1D(SMALL), 5, aggregation).eval()
    three = torch.randn(1, 3, 1, 1250)
    filled = three[:, torch.arange(8) % 3]
    distinct = (torch.arange(8) < 3)[None, :]
    with torch.no_grad():
        torch.testing.assert_close(m(filled, distinct), m(three), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(m(filled), m(three), rtol=1e-4, atol=1e-4)  # the old weighting


def step_losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train_loss"] for r in rows if "train_loss" in r}


@pytest.mark.slow
def test_resume_and_no_heldout_in_training(sim_store, sim_cohort, tmp_path, monkeypatch):
    seen = []
    real = ftm.masked_bce

    stays = pl.read_parquet(sim_cohort / "stays.parquet")
    split_of = dict(zip(stays["stay_id"], stays["split"]))
    real_getitems = ftm.StayWindows.__getitems__

    def spy(self, idx):
        out = real_getitems(self, idx)
        seen.append(out[0])
        return out

    monkeypatch.setattr(ftm.StayWindows, "__getitems__", spy)
    full = tmp_path / "full"
    s = finetune(sim_cohort, full, tiny())
    assert s.finished and s.summary["targets"] > 0
    trained = {sid for batch in seen for sid in batch}
    # fine-tuning uses the whole pretraining cohort: train and test splits, validation to stop
    assert trained and {split_of[s] for s in trained} == {"pretrain_train", "pretrain_test", "pretrain_val"}
    heldout_patients = set(stays.filter(pl.col("split") == "heldout")["patient_id"])
    patient_of = dict(zip(stays["stay_id"], stays["patient_id"]))
    assert not {patient_of[s] for s in trained} & heldout_patients
    monkeypatch.setattr(ftm, "masked_bce", real)

    killed = tmp_path / "killed"
    assert not finetune(sim_cohort, killed, tiny(), stop_after_steps=3).finished
    finetune(sim_cohort, killed, tiny(), resume=True)
    a, b = step_losses(full), step_losses(killed)
    assert sorted(a) == sorted(b) and len(a) >= 4
    for step in sorted(a):
        assert a[step] == b[step], step


def test_refuses_when_heldout_patients_reach_training(sim_store, sim_cohort, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(sim_cohort, cohort)
    stays = pl.read_parquet(cohort / "stays.parquet")
    intruder = stays.filter(pl.col("split") == "heldout")["patient_id"][0]
    victim = stays.filter(pl.col("split") == "pretrain_train")["stay_id"][0]
    stays.with_columns(pl.when(pl.col("stay_id") == victim).then(pl.lit(intruder)).otherwise(pl.col("patient_id"))
                       .alias("patient_id")).write_parquet(cohort / "stays.parquet")
    with pytest.raises(PhewasError, match="belong to held-out patients"):
        finetune(cohort, tmp_path / "run", tiny())


@pytest.mark.slow
def test_predict_writes_every_heldout_stay(sim_store, sim_cohort, tmp_path):
    run = tmp_path / "run"
    finetune(sim_cohort, run, tiny(epochs=1))
    assert main(["predict", "--run", str(run), "--cohort", str(sim_cohort), "--quiet"]) == 0
    pred = pl.read_parquet(run / "predictions.parquet")
    targets = json.loads((run / "targets.json").read_text())
    assert pred.columns == ["stay_id", "n_windows", *targets]
    assert all(pred[c].dtype == pl.Float32 for c in targets)
    windows = dict(sim_store.stays.select("stay_id", "n_ppg_windows").iter_rows())
    assert pred["n_windows"].to_list() == [min(windows.get(s, 0), 4) for s in pred["stay_id"]]
    held = pl.read_parquet(sim_cohort / "stays.parquet").filter(pl.col("split") == "heldout")
    assert sorted(pred["stay_id"]) == sorted(held["stay_id"])
    v = pred.select(targets).to_numpy()
    assert np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()
    man = json.loads((run / "predictions.manifest.json").read_text())
    assert man["checkpoint"]["sha256"] and man["windows_per_stay"] == 4 and "polars" in man["versions"]


def test_init_sources(sim_store, sim_cohort, tmp_path):
    enc = Net1D(SMALL)
    torch.save(enc.state_dict(), tmp_path / "weights.pth")
    model, arch, origin = initial_encoder(tiny(init=str(tmp_path / "weights.pth")))
    assert "AnyPPG weights" in origin and arch == SMALL  # the preset's architecture
    for k, v in enc.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    with pytest.raises(InputError, match="weights.pth: not AnyPPG's network: .*of another shape"):
        initial_encoder(make_config("study", init=str(tmp_path / "weights.pth")))
    assert "from scratch" in initial_encoder(tiny())[2]
