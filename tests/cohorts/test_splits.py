import numpy as np
import polars as pl
import pytest

from cohorts.splits import LeakageError, assign_splits, check_disjoint


def stays(n_patients=500, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for v in range(rng.integers(1, 4)):
            ppg = rng.random() < 0.9
            rows.append((f"{p}-{v}", f"P{p}", bool(ppg), bool(ppg and rng.random() < 0.4)))
    return pl.DataFrame(rows, schema=["stay_id", "patient_id", "has_ppg", "has_sync_ecg"], orient="row")


def test_patients_never_straddle_and_rules_hold():
    df = assign_splits(stays(), seed=1)
    per = df.filter(pl.col("split") != "excluded").group_by("patient_id").agg(pl.col("split").n_unique())
    assert per["split"].max() == 1
    sync_patients = set(df.filter(pl.col("has_sync_ecg"))["patient_id"])
    held = df.filter(pl.col("split") == "heldout")
    assert not sync_patients & set(held["patient_id"])
    # a patient with one synchronised and one PPG-only visit is wholly on the pretraining side
    mixed = df.filter(pl.col("patient_id").is_in(list(sync_patients)) & pl.col("has_ppg") & ~pl.col("has_sync_ecg"))
    assert mixed.height > 0 and mixed["split"].str.starts_with("pretrain").all()
    assert (df.filter(~pl.col("has_ppg"))["split"] == "excluded").all()


def test_fractions_and_determinism():
    s = stays(2000)
    a = assign_splits(s, seed=7)
    b = assign_splits(s.sample(fraction=1.0, shuffle=True, seed=3), seed=7)
    assert a.sort("stay_id")["split"].to_list() == b.sort("stay_id")["split"].to_list()
    pre = a.filter(pl.col("split").str.starts_with("pretrain")).group_by("split").agg(pl.col("patient_id").n_unique())
    share = dict(pre.iter_rows())
    total = sum(share.values())
    assert abs(share["pretrain_train"] / total - 0.8) < 0.01
    assert abs(share["pretrain_val"] / total - 0.1) < 0.01
    assert assign_splits(s, seed=8)["split"].to_list() != a["split"].to_list()


def test_check_disjoint_refuses_leak():
    df = pl.DataFrame({"patient_id": ["a", "a", "b"], "split": ["heldout", "pretrain_train", "heldout"]})
    with pytest.raises(LeakageError, match="1 patients"):
        check_disjoint(df)
