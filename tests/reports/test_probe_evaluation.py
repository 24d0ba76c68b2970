"""``probe --evaluation``: the folds of each evaluation, the choice ``auto`` makes, the intervals
and when there are none, the refitted bootstrap's pairing, each checked against a slow obvious
version; and the evaluations on real recordings with few subjects (TROIKA's 12, BUT PPG's 50).
How often the intervals hold the truth is measured in ``bench/bench_probe_calibration.py``."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from reports.probe import ProbeConfig, probe
from reports.probe_fit import fit_task, refit_bootstrap
from reports.probe_metrics import FoldResult, corrected_t, subject_t, summarise, task_metrics
from reports.probe_split import MIN_TEST_SUBJECTS, plan

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def labels_of(subjects: int, per: int, seed: int = 0, split=None) -> pl.DataFrame:
    """``per`` examples of each of ``subjects`` subjects: a rare subject-level class task and a
    continuous one."""
    rng = np.random.default_rng(seed)
    sick = rng.random(subjects) < 0.25
    sick[:2] = True, False  # both classes, whatever the draw
    s = np.repeat(np.arange(subjects), per)
    return pl.DataFrame({"subject": [f"p{i:03d}" for i in s], "split": split,
                         "af": sick[s].astype(int).astype(str), "hr": rng.normal(70, 10, len(s))},
                        schema_overrides={"split": pl.String})


def test_repeated_splits_hold_out_whole_subjects_with_both_classes_on_each_side():
    labels = labels_of(20, 3)
    p = plan(labels, "repeated", test_fraction=0.2, seed=7, splits=10, class_tasks=["af"])
    assert p.kind == "repeated" and p.label == "repeated:10" and len(p.folds) == 10
    subject = labels["subject"].to_numpy()
    for fold in p.folds:
        held = set(subject[fold.test])
        assert len(held) == 4 and held.isdisjoint(subject[~fold.test])  # whole subjects, 8:2
        for side in (fold.test, ~fold.test):
            assert labels.filter(pl.Series(side))["af"].n_unique() == 2
    assert len({tuple(np.flatnonzero(f.test)) for f in p.folds}) > 5  # different draws
    again = plan(labels, "repeated", test_fraction=0.2, seed=7, splits=10, class_tasks=["af"])
    assert all((a.test == b.test).all() for a, b in zip(p.folds, again.folds))  # seeded


def test_leave_one_subject_out_holds_each_subject_out_once():
    labels = labels_of(9, 4)
    p = plan(labels, "loso", test_fraction=0.2, seed=0, splits=10)
    assert p.label == "loso:9"
    held = np.sum([f.test for f in p.folds], axis=0)
    assert (held == 1).all()
    assert all(len(set(labels["subject"].filter(pl.Series(f.test)))) == 1 for f in p.folds)
    with pytest.raises(ValueError, match="subject for every example"):
        plan(labels.with_columns(pl.lit(None, pl.String).alias("subject")), "loso", test_fraction=0.2, seed=0,
             splits=10)


@pytest.mark.parametrize("subjects, official, chosen", [
    (20, False, "repeated"), (2 * MIN_TEST_SUBJECTS + 2, False, "repeated"),
    (5 * MIN_TEST_SUBJECTS, False, "split"), (20, True, "split")])
def test_auto_repeats_the_split_where_one_test_part_would_hold_few_subjects(subjects, official, chosen):
    split = np.where(np.arange(subjects * 2) % 5 == 0, "test", "train") if official else None
    p = plan(labels_of(subjects, 2, split=split), "auto", test_fraction=0.2, seed=0, splits=10)
    assert p.kind == chosen, p.how
    if chosen == "repeated":
        assert f"fewer than {MIN_TEST_SUBJECTS}" in p.how


def fold(kind, y, pred, groups, name="split"):
    return FoldResult(name, np.arange(len(y)), np.asarray(y), pred, np.asarray(groups), 10)


def test_no_interval_below_five_test_subjects_and_a_reason_instead():
    rng = np.random.default_rng(0)
    for n, has in ((4, False), (5, True)):
        g = np.repeat(np.arange(n), 6)
        f = fold("regression", rng.normal(size=len(g)), rng.normal(size=len(g)), g)
        s = summarise("regression", "split", [[f]], rounds=200, seed=0)
        assert np.isfinite(s.intervals["mae"]).all() == has
        assert ("not available: 4 test subjects" in s.interval) == (not has), s.interval


def test_leave_one_subject_out_errors_are_the_mean_over_subjects_and_auc_pooled():
    """Per-subject MAE averaged (each subject weighs the same, however many examples), its
    interval Student's t over subjects when asked; the AUC over every held-out prediction."""
    rng = np.random.default_rng(3)
    reg, cls = [], []
    for s in range(8):
        n = 2 + s  # unequal examples per subject
        y = rng.normal(size=n)
        reg.append(fold("regression", y, y + rng.normal(scale=1 + s / 4, size=n), [f"s{s}"] * n, f"s{s}"))
        yc = np.array([str(s % 2)] * n)
        p = rng.random(n) * 0.5 + 0.5 * (s % 2)
        cls.append(fold("binary", yc, (np.c_[1 - p, p], np.array(["0", "1"])), [f"s{s}"] * n, f"s{s}"))
    s = summarise("regression", "loso", [reg], rounds=500, seed=0, loso="t")
    per = [np.mean(np.abs(f.pred - f.y)) for f in reg]
    assert s.values["mae"] == pytest.approx(np.mean(per))
    half = stats.t.ppf(0.975, 7) * np.std(per, ddof=1) / np.sqrt(8)
    assert s.intervals["mae"] == pytest.approx((np.mean(per) - half, np.mean(per) + half))
    assert s.intervals["mae"] == pytest.approx(subject_t(per))
    c = summarise("binary", "loso", [cls], rounds=200, seed=0)
    y = np.concatenate([f.y for f in cls]) == "1"
    score = np.concatenate([f.pred[0][:, 1] for f in cls])
    slow = np.mean([a > b for a, b in itertools.product(score[y], score[~y])])
    assert c.values["auc"] == pytest.approx(slow)


def test_repeated_value_is_the_mean_over_splits_and_corrected_t_is_nadeau_bengio():
    rng = np.random.default_rng(1)
    folds = []
    for k in range(6):
        g = np.repeat(np.arange(k * 3, k * 3 + 3), 4)
        y = rng.normal(size=len(g))
        folds.append(fold("regression", y, y + rng.normal(size=len(g)), g, f"split {k + 1}"))
    per = [task_metrics("regression", f.y, f.pred)["mae"] for f in folds]
    s = summarise("regression", "repeated", [folds], rounds=0, seed=0, repeated="corrected_t")
    assert s.values["mae"] == pytest.approx(np.mean(per))
    # n_test / n_train = 3 / 15 subjects; the variance of the mean inflated by it (Nadeau & Bengio 2003)
    half = stats.t.ppf(0.975, 5) * np.std(per, ddof=1) * np.sqrt(1 / 6 + 3 / 15)
    assert s.intervals["mae"] == pytest.approx((np.mean(per) - half, np.mean(per) + half))
    assert corrected_t(per, 3, 15) == pytest.approx(s.intervals["mae"])


def refit_data(subjects=14, seed=0):
    labels = labels_of(subjects, 3, seed)
    rng = np.random.default_rng(seed)
    y = labels["hr"].to_numpy()
    X = np.c_[y + rng.normal(scale=3, size=len(y)), rng.normal(size=(len(y), 3))]
    return labels, X


def test_refit_bootstrap_pairs_encoders_on_the_same_resamples():
    """Two copies of one encoder differ by exactly 0 in every resample; a copy against the
    constant gives the same interval of its own MAE whichever else is probed with it (the same
    resamples), and a difference interval equal to the slow per-resample differences."""
    labels, X = refit_data()
    cfg = ProbeConfig(folds=3, seed=0)
    both = refit_bootstrap({"a": X, "b": X.copy(), "constant": None}, labels, "hr", "regression", cfg, "grouped",
                           rounds=12, seed=5, workers=1)
    assert both["pairs"][("a", "b")] == (0.0, 0.0)
    alone = refit_bootstrap({"a": X}, labels, "hr", "regression", cfg, "grouped", rounds=12, seed=5, workers=1)
    assert alone["intervals"]["a"]["mae"] == both["intervals"]["a"]["mae"]
    lo, hi = both["pairs"][("a", "constant")]
    assert lo < hi < 0  # the features beat the training mean in (almost) every resample
    assert both["intervals"]["a"]["mae"][1] < both["intervals"]["constant"]["mae"][0]
    assert "12 subject resamples" in both["interval"]


def test_refit_bootstrap_refits_each_resample_as_a_slow_loop_would():
    """One resample redone by hand: subjects drawn with replacement (a subject drawn twice weighs
    twice, its copies on one side of every split), split anew, every probe refitted; the
    bootstrap's first draw equals it."""
    from reports.probe_config import REFIT_SPLITS
    labels, X = refit_data(10, seed=2)
    cfg = ProbeConfig(folds=3, seed=0, splits=3)
    rng = np.random.default_rng([4, 2027])
    subject = labels["subject"].to_numpy()
    subjects = np.unique(subject)
    picked = rng.choice(subjects, len(subjects), replace=True)
    rows = np.concatenate([np.flatnonzero(subject == s) for s in picked])
    sub = labels[rows].with_columns(pl.lit(None, pl.String).alias("split"))
    folds = plan(sub, "repeated", test_fraction=0.2, seed=int(rng.integers(1 << 30)),
                 splits=min(3, REFIT_SPLITS)).folds
    for f in folds:  # no subject on both sides, though some are there twice
        assert not set(subject[rows][f.test]) & set(subject[rows][~f.test])
    assert len(rows) > len(np.unique(rows))
    results, _ = fit_task(X[rows], sub, "hr", "regression", folds, subject[rows], cfg, "grouped", 1)
    by_hand = np.mean([task_metrics("regression", r.y, r.pred)["mae"] for r in results])
    first = refit_bootstrap({"a": X}, labels, "hr", "regression", cfg, "grouped", rounds=1, seed=4, workers=1,
                            keep_draws=True)
    assert first["draws"]["a"][0]["mae"] == pytest.approx(by_hand)


# ---------------------------------------------------------------- real recordings, few subjects

def shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} is not here (real recordings of ../shared/data)")
    return path


@pytest.fixture(scope="module")
def troika(tmp_path_factory):
    from cohorts.converters import convert_dataset
    out = tmp_path_factory.mktemp("troika") / "ds"
    convert_dataset("troika", shared("troika"), out)
    return out


@pytest.mark.slow
def test_troikas_heart_rate_by_each_evaluation(troika, tmp_path):
    """TROIKA: 12 recordings of 11 subjects running. One split tests 2 subjects (no interval);
    ``auto`` repeats it, leave-one-subject-out tests each; the pulse features beat the training
    mean under each, and under the repeated splits the paired interval of the difference says so."""
    tables = {}
    for evaluation in ("split", "auto", "loso"):
        out = tmp_path / evaluation
        s = probe(troika, ["features"], out, config=ProbeConfig(evaluation=evaluation, bootstrap=20, workers=2,
                                                                folds=3, paper="none"))
        tables[evaluation] = (s, pl.read_csv(out / "probe.csv"), pl.read_csv(out / "probe_pairs.csv"))
    s, t, _ = tables["split"]
    mae = t.filter(pl.col("metric") == "mae")
    assert s["evaluation"] == "split" and mae["ci_low"].is_null().all()
    assert mae["interval"][0].startswith("not available: 2 test subjects")
    s, t, pairs = tables["auto"]
    assert s["evaluation"] == "repeated:10"
    mae = dict(t.filter(pl.col("metric") == "mae").select("encoder", "value").iter_rows())
    assert mae["features"] < mae["constant"], mae
    pair = pairs.filter(pl.col("metric") == "mae").row(0, named=True)
    assert (pair["encoder_a"], pair["encoder_b"]) == ("features", "constant")
    assert pair["ci_high"] < 0 and pair["includes_zero"] is False, pair
    s, t, _ = tables["loso"]
    assert s["evaluation"] == "loso:11"
    folds = pl.read_csv(tmp_path / "loso" / "probe_folds.csv")
    assert folds.filter((pl.col("encoder") == "features") & (pl.col("metric") == "mae"))["fold"].n_unique() == 11
    loso = t.filter((pl.col("metric") == "mae") & (pl.col("encoder") == "features")).row(0, named=True)
    per = folds.filter((pl.col("encoder") == "features") & (pl.col("metric") == "mae"))["value"]
    assert loso["value"] == pytest.approx(per.mean()) and loso["ci_low"] < loso["value"] < loso["ci_high"]
