"""``phewas compare``: the tables against a direct computation, the same stays and exclusions as
``report``, and clear errors."""

import json

import numpy as np
import polars as pl
import pytest
from helpers import fake_cohort, second_model
from sklearn.metrics import roc_auc_score

from phewas.cli import main
from reports.compare import CompareConfig, compare


def test_compare_outputs_against_direct_computation(tmp_path):
    cohort, labels = fake_cohort(tmp_path / "c")
    b = second_model(cohort, drop=["427.21"])
    out = tmp_path / "cmp"
    rc = main(["compare", "--cohort", str(cohort), "--predictions", str(cohort / "predictions.parquet"), str(b),
               "--names", "deep", "weak", "--out", str(out), "--min-positives", "100", "--quiet"])
    assert rc == 0
    t = pl.read_csv(out / "comparison.csv", schema_overrides={"phecode": pl.String})
    # report's min-positives rule, on phecodes that both models predict (427.21 only in one)
    assert sorted(t["phecode"]) == ["250.2", "401.1"]
    assert set(t["model_a"]) == {"deep"} and set(t["model_b"]) == {"weak"}
    held = labels.head(550)
    a = pl.read_parquet(cohort / "predictions.parquet").head(550)
    w = pl.read_parquet(b).head(550)
    for code in ("250.2", "401.1"):
        row = t.filter(pl.col("phecode") == code).row(0, named=True)
        keep = held[code].is_not_null().to_numpy()
        y = held[code].to_numpy()[keep]
        auc_a, auc_b = roc_auc_score(y, a[code].to_numpy()[keep]), roc_auc_score(y, w[code].to_numpy()[keep])
        assert row["auc_a"] == pytest.approx(auc_a) and row["auc_b"] == pytest.approx(auc_b)
        assert row["auc_diff"] == pytest.approx(auc_a - auc_b)
        assert row["diff_ci_low"] < row["auc_diff"] < row["diff_ci_high"] and 0 <= row["p_value"] <= 1
        assert row["auc_a_ci_low"] < row["auc_a"] < row["auc_a_ci_high"]
        assert row["n_pos"] == int(y.sum())
    rep = pl.read_parquet(out / "comparison.parquet")
    assert rep.height == 2 and (rep["better"] == "deep").all()  # the weak model's scores are mostly noise
    s = json.loads((out / "summary.json").read_text())
    assert s["pairs"][0]["n_a_better"] == 2 and s["pairs"][0]["n_b_better"] == 0
    assert s["counts"]["phecodes_in_common"] == 2
    assert (out / "auc_scatter_deep_vs_weak.png").exists() and (out / "auc_difference_deep_vs_weak.svg").exists()
    page = (out / "index.html").read_text()
    assert page.count("<img alt=") == 2 and "<table" in page  # the two static figures, embedded
    assert json.loads((out / "manifest.json").read_text())["command"] == "compare"


def test_three_models_give_three_pairs_on_the_same_stays(tmp_path):
    cohort, _ = fake_cohort(tmp_path / "first")
    b = second_model(cohort, "second", seed=1)
    c = second_model(cohort, "third", seed=2)
    pred = pl.read_parquet(c)  # the third model has no window for some stays: they leave every pair
    none = np.arange(pred.height) % 10 == 0
    pred.with_columns(pl.Series("n_windows", np.where(none, 0, 20), dtype=pl.Int32)).write_parquet(c)
    s = compare(cohort, [cohort / "predictions.parquet", b, c], tmp_path / "o",
                config=CompareConfig(min_positives=50))
    assert [m["name"] for m in s["models"]] == ["first", "second", "third"]  # folder names
    assert [(p["model_a"], p["model_b"]) for p in s["pairs"]] == [
        ("first", "second"), ("first", "third"), ("second", "third")]
    held = 550
    assert s["n_stays"] == held - int(none[:held].sum())
    assert s["counts"]["stays_left_out"]["not_scored_by_every_model"] == int(none[:held].sum())
    t = pl.read_parquet(tmp_path / "o" / "comparison.parquet")
    assert t.group_by("model_a", "model_b").len()["len"].to_list() == [3, 3, 3]


def test_compare_errors(tmp_path):
    cohort, _ = fake_cohort(tmp_path / "c")
    p = cohort / "predictions.parquet"
    with pytest.raises(Exception, match="at least two"):
        compare(cohort, [p], tmp_path / "o")
    with pytest.raises(Exception, match="names repeat"):
        compare(cohort, [p, p], tmp_path / "o")
    with pytest.raises(Exception, match="2 names for 3"):
        compare(cohort, [p, p, p], tmp_path / "o", names=["a", "b"])
    with pytest.raises(Exception, match="not a usable model name"):
        compare(cohort, [p, p], tmp_path / "o", names=["a", "b/c"])
    with pytest.raises(Exception, match="lower --min-positives"):
        compare(cohort, [p, p], tmp_path / "o", names=["a", "b"], config=CompareConfig(min_positives=10_000))
    assert not (tmp_path / "o").exists()
    rc = main(["compare", "--cohort", str(cohort), "--predictions", str(p), str(tmp_path / "nope.parquet"),
               "--names", "a", "b", "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2
