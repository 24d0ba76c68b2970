"""``phewas features``: the predictions format that report and compare read, training on the
fine-tuning stays only, the heart-rate-only scores and report."""

import json

import numpy as np
import polars as pl
import pytest

from cohorts.splits import TRAIN_SPLITS
from encoder.baseline import FeaturesConfig, pulse_baseline
from encoder.pulse import NAMES
from phewas.cli import main


@pytest.fixture(scope="module")
def baseline_run(sim_store, sim_cohort, tmp_path_factory):
    run = tmp_path_factory.mktemp("features") / "run"
    m = pulse_baseline(sim_cohort, run, FeaturesConfig(min_train_positives=5, workers=2))
    return run, m


def test_predictions_cover_the_split_in_predicts_format(baseline_run, sim_cohort, sim_store):
    run, m = baseline_run
    pred = pl.read_parquet(run / "predictions.parquet")
    targets = json.loads((run / "targets.json").read_text())
    assert pred.columns == ["stay_id", "n_windows", *targets]
    held = pl.read_parquet(sim_cohort / "stays.parquet").filter(pl.col("split") == "heldout")
    assert sorted(pred["stay_id"]) == sorted(held["stay_id"])
    windows = dict(sim_store.stays.select("stay_id", "n_ppg_windows").iter_rows())
    assert pred["n_windows"].to_list() == [windows.get(s, 0) for s in pred["stay_id"]]
    x = pred.select(targets).to_numpy()
    assert np.isfinite(x).all() and (x > 0).all() and (x < 1).all()
    assert m["counts"]["stays_without_windows_given_prior"] == int((pred["n_windows"] == 0).sum())
    assert m["counts"]["models_fitted"] == len(targets)
    feats = pl.read_parquet(run / "features.parquet")
    assert set(NAMES) <= set(feats.columns)
    assert set(feats["split"]) <= {*TRAIN_SPLITS, "heldout"}


def test_held_out_labels_are_never_read(baseline_run, sim_cohort, tmp_path):
    """Training uses the fine-tuning stays only: scrambling every held-out label changes nothing."""
    run, _ = baseline_run
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    for f in ("stays.parquet", "phecodes.parquet", "manifest.json"):
        (cohort / f).write_bytes((sim_cohort / f).read_bytes())
    (cohort / "segments").symlink_to(sim_cohort / "segments")
    stays = pl.read_parquet(sim_cohort / "stays.parquet")
    held = stays.filter(pl.col("split") == "heldout")["stay_id"]
    labels = pl.read_parquet(sim_cohort / "labels.parquet")
    rng = np.random.default_rng(0)
    codes = [c for c in labels.columns if c != "stay_id"]
    scrambled = labels.with_columns(
        pl.when(pl.col("stay_id").is_in(held.implode()))
        .then(pl.Series(rng.integers(0, 2, labels.height), dtype=pl.Int8)).otherwise(pl.col(c)).alias(c)
        for c in codes)
    scrambled.write_parquet(cohort / "labels.parquet")
    pulse_baseline(cohort, tmp_path / "run", FeaturesConfig(min_train_positives=5, workers=1))
    a = pl.read_parquet(run / "predictions.parquet")
    b = pl.read_parquet(tmp_path / "run" / "predictions.parquet")
    assert a.equals(b)


def test_cli_writes_heart_rate_scores_and_their_report(sim_store, sim_cohort, tmp_path):
    run = tmp_path / "run"
    rc = main(["features", "--cohort", str(sim_cohort), "--out", str(run), "--min-train-positives", "5",
               "--min-positives", "5", "--workers", "1", "--quiet"])
    assert rc == 0
    hr = pl.read_parquet(run / "heart_rate.parquet")
    feats = pl.read_parquet(run / "features.parquet").select("stay_id", "heart_rate")
    joined = hr.join(feats, on="stay_id").filter(pl.col("n_windows") > 0)
    targets = json.loads((run / "targets.json").read_text())
    assert np.allclose(joined[targets[0]].to_numpy(), joined["heart_rate"].to_numpy(), rtol=1e-6)
    assert (run / "heart_rate_report" / "phenotypes.csv").exists()
    assert json.loads((run / "manifest.json").read_text())["command"] == "features"
    assert main(["features", "--cohort", str(sim_cohort), "--out", str(run), "--quiet"]) == 2  # exists
    assert main(["features", "--cohort", str(sim_cohort), "--out", str(tmp_path / "r2"), "--l2-c", "0",
                 "--quiet"]) == 2
