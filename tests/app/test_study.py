"""The whole study on a small simulated dataset: the pipeline must find what was put in.

This is the slowest test (about 4 minutes on 2 cores): simulate -> build-cohort ->
extract-segments -> pretrain -> finetune -> predict -> report through ``phewas run-all``.
"""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from phewas.cli import main
from phewas.study import run_all

CONFIG = (Path(__file__).resolve().parents[1] / "fixtures" / "study.toml").read_text()


@pytest.mark.slow
@pytest.mark.study
def test_small_study_recovers_the_injected_phecodes(tmp_path):
    cfg = tmp_path / "study.toml"
    cfg.write_text(CONFIG)
    from cohorts.sim.probe import SimulateProbeConfig, simulate_probe_dataset
    simulate_probe_dataset(tmp_path / "probe-data", SimulateProbeConfig(subjects=40, seed=5))
    assert main(["run-all", "--config", str(cfg), "--quiet"]) == 0
    check = json.loads((tmp_path / "work" / "truth_check.json").read_text())
    for phecode, r in check["injected"].items():
        assert r["reported"] and r["recovered"], (phecode, r)  # FDR-significant, AUC CI above 0.5
    assert check["injected"]["427.21"]["auc"] > 0.8
    # nothing but the injected effects beyond age and sex, with margin: mean AUC of the null
    # phecodes within 0.03 of age and sex alone, and at most 10% of their p-values below 0.05
    # (about 5% expected; a test over stays instead of patients puts 12% there). One study's
    # false discovery proportion is a random draw that floating-point differences move (its
    # smallest null q-value was 0.062 on one machine, 0.2 on another): the false discovery rate
    # is measured over replicate studies by bench/bench_fdr.py (README, "Ground truth").
    assert check["null_mean_auc_minus_age_sex"] < 0.03
    assert check["null_share_p_below_alpha"] <= 0.10, check
    assert check["n_null_phecodes"] > 100
    # the pulse-feature baseline recovers the heart-rate-driven phecodes (AF, anaemia), and
    # compare sets it beside the fine-tuned model on the same stays
    pulse = json.loads((tmp_path / "work" / "models" / "pulse" / "truth_check.json").read_text())
    for phecode in ("427.21", "285"):
        assert pulse["injected"][phecode]["recovered"], (phecode, pulse["injected"][phecode])
    pairs = json.loads((tmp_path / "work" / "compare" / "summary.json").read_text())["pairs"]
    assert [(p["model_a"], p["model_b"]) for p in pairs] == [("finetune", "pulse")]
    assert pairs[0]["n_phenotypes"] > 100
    # the probe of the pretraining run, before fine-tuning: heart rate from the frozen embedding
    # within 5 bpm (simulated windows with known beats; 2.5 measured, random weights 4.4: this
    # small study's encoder barely beats the floor, the demo's does, bench/bench_probe.py), and
    # both far from the constant reference (the training mean: 11.5)
    probe = pl.read_csv(tmp_path / "work" / "probe" / "probe.csv")
    mae = dict(probe.filter((pl.col("task") == "heart_rate") & (pl.col("metric") == "mae"))
               .select("encoder", "value").iter_rows())
    assert set(mae) == {"pretrain", "random", "constant"} and mae["pretrain"] < 5.0, mae
    assert mae["constant"] > 2 * max(mae["pretrain"], mae["random"]), mae
    # a second run is up to date: every stage skipped, the report read back
    again = run_all(cfg)
    assert again.seconds == {} and again.summary["n_phenotypes"] > 100
    # a stage whose output went missing runs again, and only it
    shutil.rmtree(tmp_path / "work" / "report")
    assert list(run_all(cfg).seconds) == ["report"]  # not compare: it reads predictions only
    # speed-only settings are no reason to rerun
    cfg.write_text(CONFIG.replace("workers = 2", "workers = 1"))
    assert run_all(cfg).seconds == {}
    # a stage rerun by hand (perhaps with other settings): run-all reruns it with the config's
    # settings and what depends on it, nothing upstream
    work = tmp_path / "work"
    assert main(["predict", "--run", str(work / "finetune"), "--cohort", str(work / "cohort"), "--force",
                 "--quiet"]) == 0
    # ... and compare, which reads its predictions; the other model's stages stay as they are
    assert list(run_all(cfg).seconds) == ["predict", "report", "compare"]
