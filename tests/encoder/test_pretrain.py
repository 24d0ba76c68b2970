import json
import shutil

import numpy as np
import pytest
import torch

from encoder.checkpoints import load_anyppg
from encoder.config import demo_ecg
from encoder.config import pretrain_config as make_config
from encoder.net1d import Net1D
from encoder.pretrain import pretrain
from phewas.base.errors import InputError, OutputExistsError, PhewasError
from phewas.cli import main


def losses(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train_loss"] for r in rows if "train_loss" in r}


def tiny(**kw):
    base = dict(steps=6, batch_size=16, eval_every=3, checkpoint_every=3, retrieval_batch=8, warmup_steps=2,
                log_every=1)  # every step's loss logged: the resume tests compare them
    return make_config("demo", **{**base, **kw})


@pytest.mark.slow
def test_resume_after_kill_reproduces_the_next_steps(sim_store, sim_cohort, tmp_path):
    full = tmp_path / "full"
    pretrain(sim_cohort, full, tiny())
    killed = tmp_path / "killed"
    s = pretrain(sim_cohort, killed, tiny(), stop_after_steps=3)
    assert not s.finished and s.step == 3
    with pytest.raises(OutputExistsError, match="--resume"):
        pretrain(sim_cohort, killed, tiny())
    pretrain(sim_cohort, killed, tiny(), resume=True)
    a, b = losses(full), losses(killed)
    assert sorted(b) == list(range(1, 7))
    for step in range(4, 7):
        assert a[step] == b[step], (step, a[step], b[step])
    assert (killed / "ppg_encoder.pth").exists() and (killed / "manifest.json").exists()


@pytest.mark.slow
def test_short_pretraining_beats_chance(sim_store, sim_cohort, tmp_path):
    run = tmp_path / "run"
    s = pretrain(sim_cohort, run, make_config("demo", steps=180, batch_size=32, eval_every=90,
                                              checkpoint_every=90, retrieval_batch=16))
    r = s.summary["retrieval"]
    assert r["batch_size"] == 16 and r["chance_recall@1"] == 1 / 16
    # The test split holds about 40 pairs: recall@1 moves in steps of 1/32 and, over pretraining
    # seeds 0-2, ranged 0.04-0.25 on one simulated set. The mean reciprocal rank uses every
    # rank; at random it is H(16)/16 = 0.211, and seeds 0-2 gave 0.31-0.40 at 180 steps.
    chance_mrr = sum(1 / k for k in range(1, 17)) / 16
    assert r["mrr"] > 1.4 * chance_mrr and r["recall@1"] > r["chance_recall@1"], r
    saved = json.loads((run / "retrieval.json").read_text())
    assert saved["recall@1"] == r["recall@1"] and saved["split"] == "pretrain_test"
    # the exported encoder is an AnyPPG-format state dict of the run's PPG tower
    load_anyppg(run / "ppg_encoder.pth", make_config("demo").ppg)


@pytest.mark.slow
def test_frozen_ecg_checkpoint_uses_the_feature_cache(sim_store, sim_cohort, tmp_path):
    cohort = tmp_path / "cohort"  # the cache is written beside the store: not into the shared fixture
    shutil.copytree(sim_cohort, cohort)
    ecg = Net1D(demo_ecg())
    torch.save({"state_dict": ecg.state_dict()}, tmp_path / "ecg.pth")
    cfg = tiny(ecg_checkpoint=str(tmp_path / "ecg.pth"), steps=3)
    assert cfg.use_cache
    pretrain(cohort, tmp_path / "run", cfg)
    assert not (sim_cohort / "segments" / "ecg_cache").exists()
    caches = list((cohort / "segments" / "ecg_cache").glob("*.npy"))
    assert len(caches) == 1
    feats = np.load(caches[0])
    p, e = sim_store.pairs(sim_store.pair_index["stay_id"][0])
    with torch.no_grad():
        direct = ecg.eval()(torch.from_numpy(e[:2])[:, None]).numpy()
    row = sim_store.pair_index["row"][0]
    np.testing.assert_allclose(feats[row:row + 2], direct, rtol=1e-2, atol=1e-2)  # float16 store
    # a wrong ECG checkpoint is an error, never a silent fall-back to random weights
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="does not match"):
        pretrain(cohort, tmp_path / "run2", tiny(ecg_checkpoint=str(tmp_path / "bad.pth")))
    with pytest.raises(PhewasError, match="frozen ECG encoder"):
        pretrain(cohort, tmp_path / "run3", tiny(cache_ecg=True))


def test_cli_pretrain_flags_override_the_preset(sim_store, sim_cohort, tmp_path):
    run = tmp_path / "cli"
    rc = main(["pretrain", "--cohort", str(sim_cohort), "--out", str(run), "--preset", "demo", "--steps", "2",
               "--batch-size", "16", "--eval-every", "1", "--retrieval-batch", "8", "--quiet"])
    assert rc == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["steps"] == 2 and cfg["batch_size"] == 16 and cfg["preset"] == "demo" and cfg["lr"] == 5e-3
    assert list((run / "tensorboard").iterdir())


@pytest.mark.slow
def test_torchrun_two_processes(sim_store, sim_cohort, tmp_path):
    """The same command under torchrun: DistributedDataParallel on CPU (gloo), features gathered
    across ranks; rank 0 writes the run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).parent / "torchrun"
    run = tmp_path / "ddp"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "phewas.cli", "pretrain", "--cohort",
           str(sim_cohort), "--out", str(run), "--preset", "demo", "--steps", "3", "--batch-size", "16",
           "--eval-every", "3", "--retrieval-batch", "8", "--device", "cpu", "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 3 and (run / "retrieval.json").exists()
