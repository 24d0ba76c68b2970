"""What a CUDA run would meet first, checked on the CPU (and on two gloo processes), with the
checks that need a GPU written out and marked ``gpu`` (skipped without one; ``bench/gpu_check.sh``
runs them).

- a checkpoint of any number of processes or devices resumes (or is read by ``predict``) on any
  other: random states are saved per rank, restored where the ranks match, reseeded otherwise;
- the contrastive losses and the fine-tuning head run in float32 under autocast;
- SyncBatchNorm under several GPU processes (torch's SyncBatchNorm runs on GPUs only: on CPU
  processes the setting is refused); the gradient all-reduce once per step (``no_sync``);
- each rank's dropout masks its own, reproducibly; the ECG feature cache written by every rank;
- predictions record their device and precision;
- ``bench/gpu_check.sh --dry-run`` runs end to end.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.checkpoints import load_checkpoint, rng_states, save_checkpoint
from encoder.config import demo_ppg
from encoder.distributed import Dist
from encoder.heads import StayClassifier
from encoder.net1d import Net1D

ROOT = Path(__file__).resolve().parents[2]


def small_checkpoint(tmp_path, rng):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save_checkpoint(tmp_path / "last.pt", model=model, optimizer=opt, scheduler=sched, step=5, best=0.1, extra={},
                    rng=rng)
    return model, opt, sched


def test_a_checkpoint_of_eight_processes_resumes_on_one(tmp_path):
    fake = {"rng_by_rank": [{"cpu": torch.get_rng_state(), "cuda": None} for _ in range(8)]}
    model, opt, sched = small_checkpoint(tmp_path, fake)
    seeds = []
    load_checkpoint(tmp_path / "last.pt", model=model, optimizer=opt, scheduler=sched, rank=0, world=1,
                    reseed=seeds.append)
    assert seeds == [5]  # reseeded from the step: the run continues, not bit-exact (and says so)
    # the earlier format: every visible device's CUDA state; on fewer devices it is left, not a crash
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    del state["rng_by_rank"]
    state |= {"rng_cpu": torch.get_rng_state(), "rng_cuda": [torch.zeros(16, dtype=torch.uint8)] * 8}
    torch.save(state, tmp_path / "old.pt")
    load_checkpoint(tmp_path / "old.pt", model=model, optimizer=opt, scheduler=sched)


def test_loading_for_prediction_touches_no_random_state(tmp_path):
    model, opt, sched = small_checkpoint(tmp_path, rng_states())
    torch.manual_seed(3)
    before = torch.get_rng_state()
    load_checkpoint(tmp_path / "last.pt", model=model, restore_random=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_resume_on_as_many_processes_restores_each_ranks_state(tmp_path):
    torch.manual_seed(11)
    rng = rng_states()
    expected = torch.rand(3)  # what the run would draw next
    model, opt, sched = small_checkpoint(tmp_path, rng)
    torch.manual_seed(0)
    load_checkpoint(tmp_path / "last.pt", model=model, optimizer=opt, scheduler=sched)
    assert torch.equal(torch.rand(3), expected)


def cpu_bf16_autocast(device, bf16):
    """The autocast a GPU run gets, on the CPU: what the float32 guards must survive."""
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_contrastive_losses_are_float32_under_autocast(monkeypatch):
    import encoder.objectives as objectives
    from encoder.clip import PPGECGClip, clip_loss
    from encoder.config import pretrain_config
    monkeypatch.setattr(objectives, "autocast", cpu_bf16_autocast)
    cfg = pretrain_config("demo", ecg_from_scratch=True)
    torch.manual_seed(0)
    model = PPGECGClip(Net1D(cfg.ppg), cfg.ecg.out_dim, Net1D(cfg.ecg), dropout=0.0).eval()
    ppg, ecg = torch.randn(6, 1, 1250), torch.randn(6, 1, 5000)
    loss = objectives.OBJECTIVES["clip"].loss(model, (ppg, ecg), cfg, torch.device("cpu"), False, (0,))
    assert loss.dtype == torch.float32
    with cpu_bf16_autocast(None, True):
        p, e, scale = model(ppg, ecg)
    assert p.dtype == torch.bfloat16  # the features are bf16 ...
    exact = clip_loss(p.float(), e.float(), scale.float(), gather=False)
    assert float(loss.detach()) == pytest.approx(float(exact.detach()), abs=1e-6)  # ... float32 arithmetic on them
    with cpu_bf16_autocast(None, True):  # what computing it inside autocast gives: bf16 logits
        inside = clip_loss(p, e, scale, gather=False)
    assert abs(float(inside) - float(exact)) > 1e-5


def test_fine_tuning_logits_are_float32_under_autocast():
    torch.manual_seed(0)
    model = StayClassifier(Net1D(demo_ppg()), 40).eval()
    x = torch.randn(3, 4, 1, 1250)
    with cpu_bf16_autocast(None, True):
        logits = model(x)
    assert logits.dtype == torch.float32
    probs = torch.sigmoid(logits).detach().numpy()
    assert len(np.unique(probs[:, 0].round(7))) == 3  # not bf16's coarse steps


@pytest.mark.slow
def test_two_processes_share_what_they_must_and_nothing_else(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    res = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(Path(__file__).parent /
                          "ddp_checks.py"), str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
                              "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["mask"] != r1["mask"] and r0["mask"] == r0["mask_again"]  # each rank's own, reproducible
    assert r0["rng_entries"] == 2 and r0["rng_restored"] == "restored"
    assert r0["after"] == r0["after_restored"] and r1["after"] == r1["after_restored"]
    assert r0["allreduce_calls"] == 1 and r1["allreduce_calls"] == 1  # four micro-batches, one all-reduce
    assert (r0["loss"] + r1["loss"]) / 2 == pytest.approx(r0["loss_whole"], abs=1e-6)
    for r in (r0, r1):
        np.testing.assert_allclose(r["grad"], r["grad_whole"], atol=5e-7)


@pytest.mark.slow
def test_the_ecg_cache_is_written_by_every_rank(sim_store, sim_cohort, tmp_path):
    """Two processes write their halves of the rows; the file equals one process's."""
    import shutil

    from cohorts.store import SegmentStore
    from encoder.config import demo_ecg
    from encoder.pretrain import ecg_feature_cache
    store_path = tmp_path / "segments"
    shutil.copytree(sim_store.path, store_path)
    torch.manual_seed(0)
    enc = Net1D(demo_ecg()).eval()
    torch.save(enc.state_dict(), tmp_path / "ecg.pt")
    single = np.array(ecg_feature_cache(SegmentStore(store_path), enc, "one", torch.device("cpu"), d=Dist()))
    script = tmp_path / "cache.py"
    script.write_text(
        "import sys, torch\nfrom cohorts.store import SegmentStore\nfrom encoder.config import demo_ecg\n"
        "from encoder.distributed import setup_distributed\nfrom encoder.net1d import Net1D\n"
        "from encoder.pretrain import ecg_feature_cache\n"
        "d = setup_distributed('cpu')\nenc = Net1D(demo_ecg())\n"
        f"enc.load_state_dict(torch.load({str(tmp_path / 'ecg.pt')!r}, weights_only=True))\n"
        f"ecg_feature_cache(SegmentStore({str(store_path)!r}), enc, 'two', torch.device('cpu'), batch=16, d=d)\n"
        "torch.distributed.destroy_process_group()\n")
    torchrun = Path(sys.executable).parent / "torchrun"
    res = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script)], capture_output=True,
                         text=True, timeout=300, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                                "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-3000:]
    two = np.load(store_path / "ecg_cache" / "two.npy")
    np.testing.assert_array_equal(two, single)
    assert not list((store_path / "ecg_cache").glob(".*tmp*"))  # nothing half-written left


def test_predictions_record_their_device_and_precision(tmp_path):
    from encoder.distributed import precision
    assert precision(torch.device("cpu"), True) == "fp32"
    assert precision(torch.device("cuda"), True) == "bf16" and precision(torch.device("cuda"), False) == "fp32"


def test_gpu_check_runs_end_to_end_in_its_dry_run(tmp_path):
    res = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path / "g.json")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    figures = json.loads((tmp_path / "g.json").read_text())
    assert figures["dry_run"] and figures["device"] == "cpu"
    for mode in ("fp32_eager", "bf16", "bf16_compile"):
        assert figures[f"pretrain_{mode}"]["windows_per_s"] > 0 and figures[f"finetune_{mode}"]["windows_per_s"] > 0


# Checks that need a GPU: bench/gpu_check.sh runs `pytest -m gpu` on a lent machine.

@pytest.mark.gpu
def test_gpu_a_checkpoint_resumes_with_fewer_visible_devices(sim_store, sim_cohort, tmp_path):
    from encoder.config import pretrain_config
    from encoder.pretrain import pretrain
    cfg = pretrain_config("demo", steps=4, batch_size=16, eval_every=2, checkpoint_every=2, retrieval_batch=8,
                          device="cuda", log_every=1)
    pretrain(sim_cohort, tmp_path / "run", cfg, stop_after_steps=2)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    state["rng_by_rank"] = state["rng_by_rank"] * 8  # as an 8-GPU job would have saved it
    torch.save(state, tmp_path / "run" / "checkpoints" / "last.pt")
    assert pretrain(sim_cohort, tmp_path / "run", cfg, resume=True).finished


@pytest.mark.gpu
def test_gpu_deterministic_resume_is_exact(sim_store, sim_cohort, tmp_path):
    from encoder.config import pretrain_config
    from encoder.pretrain import pretrain
    cfg = pretrain_config("demo", steps=6, batch_size=16, eval_every=3, checkpoint_every=3, retrieval_batch=8,
                          device="cuda", deterministic=True, log_every=1)
    pretrain(sim_cohort, tmp_path / "full", cfg)
    pretrain(sim_cohort, tmp_path / "cut", cfg, stop_after_steps=3)
    pretrain(sim_cohort, tmp_path / "cut", cfg, resume=True)

    def losses(run):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["train_loss"] for r in rows if "train_loss" in r}
    a, b = losses(tmp_path / "full"), losses(tmp_path / "cut")
    assert all(a[s] == b[s] for s in range(4, 7)), (a, b)


@pytest.mark.gpu
def test_gpu_losses_are_float32_under_cuda_autocast():
    from encoder.clip import PPGECGClip
    from encoder.config import pretrain_config
    from encoder.objectives import OBJECTIVES
    cfg = pretrain_config("demo", ecg_from_scratch=True)
    dev = torch.device("cuda")
    model = PPGECGClip(Net1D(cfg.ppg), cfg.ecg.out_dim, Net1D(cfg.ecg)).to(dev)
    loss = OBJECTIVES["clip"].loss(model, (torch.randn(8, 1, 1250), torch.randn(8, 1, 5000)), cfg, dev, False, (0,))
    assert loss.dtype == torch.float32
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = StayClassifier(Net1D(demo_ppg()), 10).to(dev)(torch.randn(2, 3, 1, 1250, device=dev))
    assert logits.dtype == torch.float32


@pytest.mark.gpu
def test_gpu_sync_batch_norm_under_two_processes(tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    torchrun = Path(sys.executable).parent / "torchrun"
    script = tmp_path / "sync.py"
    script.write_text(
        "import sys, json, torch\nfrom encoder.distributed import setup_distributed\nfrom encoder.loop import wrap\n"
        "d = setup_distributed('cuda')\ntorch.manual_seed(0)\n"
        "net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).cuda()\n"
        "w = wrap(net, d, False, sync_bn=True)\nw(torch.randn(8, 3, device='cuda') + 3.0 * d.rank).sum().backward()\n"
        f"open({str(tmp_path)!r} + f'/r{{d.rank}}.json', 'w').write(json.dumps(net[1].running_mean.tolist()))\n"
        "torch.distributed.destroy_process_group()\n")
    res = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script)], capture_output=True,
                         text=True, timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = (json.loads((tmp_path / f"r{r}.json").read_text()) for r in (0, 1))
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.gpu
def test_gpu_predictions_record_bf16(sim_store, sim_cohort, tmp_path):
    from encoder.config import PredictConfig, finetune_config
    from encoder.finetune import finetune
    from encoder.predict import predict
    cfg = finetune_config("demo", segments_per_stay=2, min_train_positives=3, batch_size=8, epochs=1, warmup_steps=2,
                          device="cuda")
    finetune(sim_cohort, tmp_path / "ft", cfg)
    manifest = predict(sim_cohort, tmp_path / "ft", PredictConfig(device="cuda"))
    assert manifest["precision"] == "bf16" and manifest["device"].startswith("cuda")
