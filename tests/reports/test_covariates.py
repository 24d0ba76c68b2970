"""Covariates beyond age and sex: their coding against statsmodels' formula interface, the
batched test against the phenotype-by-phenotype one, calibration on nulls that a categorical
covariate confounds (populations drawn here, not by the project's simulator), and the cohort and
report commands that carry them."""

import json

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.formula.api as smf
from populations import confounded_nulls
from reference_association import associate
from scipy.special import expit

from phewas.cli import main
from reports.adjustment import adjustment_design as design
from reports.association import associate_all

RACES = np.array(["White", "Black", "Asian", "Other", "Pacific", "Native"])


def population(rng, n: int, *, missing: float = 0.03):
    """Stays with age, sex, a text covariate (two levels under 1%, some missing) and a numeric one
    (some missing)."""
    age = np.round(rng.uniform(18, 90, n))
    sex = rng.choice(["F", "M"], n)
    race = rng.choice(RACES, n, p=[0.5, 0.25, 0.15, 0.094, 0.004, 0.002]).astype(object)
    race[rng.random(n) < missing] = None
    heart_rate = rng.normal(80, 12, n)
    heart_rate[rng.random(n) < missing] = np.nan
    return age, sex, race, heart_rate


def test_text_covariate_is_dummy_coded_with_the_most_frequent_level_as_reference():
    rng = np.random.default_rng(0)
    age, sex, race, hr = population(rng, 3000)
    d = design(age, sex, {"race": race, "heart_rate": hr}, min_share=0.01)
    coding = d.coding["race"]
    assert coding["kind"] == "text" and coding["reference"] == "White"
    assert sorted(coding["pooled_into_other"]) == ["Native", "Pacific"]
    assert coding["rows_missing"] == int(sum(v is None for v in race))
    assert d.coding["heart_rate"] == {"kind": "numeric", "entered": "linear", "rows_missing": int(np.isnan(hr).sum())}
    assert (~d.usable).sum() == np.isnan(hr).sum()  # numeric missing: rows dropped; text: a level
    # the race columns against patsy's treatment coding of the same recoded values
    recoded = np.array(["missing" if v is None else "other" if v in ("Native", "Pacific") else v for v in race])
    frame = pd.DataFrame({"race": recoded})
    from patsy import dmatrix
    ref = dmatrix("C(race, Treatment('White'))", frame, return_type="dataframe")
    ours = {name.split("=", 1)[1]: d.matrix[:, j] for j, name in enumerate(d.names) if name.startswith("race=")}
    for column in ref.columns[1:]:
        level = column.split("[T.")[1].rstrip("]")
        np.testing.assert_array_equal(ours.pop(level), ref[column].to_numpy())
    assert not ours  # no level beyond patsy's


def test_adjusted_test_equals_statsmodels_formula_interface():
    """associate_all's likelihood-ratio test with race (dummy-coded) and heart rate (linear) against
    statsmodels' formula interface on the persons, written out."""
    rng = np.random.default_rng(1)
    n = 2500
    age, sex, race, hr = population(rng, n)
    patient = rng.integers(0, 1800, n)
    order = rng.permutation(n)
    black = np.array([v == "Black" for v in race])
    y = np.column_stack([(rng.random(n) < expit(-2 + 0.8 * black + 0.02 * (age - 50))),
                         (rng.random(n) < expit(-1.5 + 0.5 * (sex == "F")))]).astype(np.int8)
    scores = expit(np.column_stack([0.5 * black + rng.normal(size=n), 0.3 * y[:, 1] + rng.normal(size=n)]))
    d = design(age, sex, {"race": race, "heart_rate": hr})
    rows = associate_all(y, scores, d, sex, groups=patient, order=order, folds=3, seed=0)
    for k in range(2):
        # the persons: each patient's latest stay among those with heart rate known
        frame = pd.DataFrame({"y": y[:, k], "z": np.log(scores[:, k] / (1 - scores[:, k])), "patient": patient,
                              "order": order, "sex": sex, "hr": hr,
                              "race": ["missing" if v is None else "other" if v in ("Native", "Pacific") else v
                                       for v in race]})
        for j, name in enumerate(d.names):
            if name.startswith("age_"):
                frame[name] = d.matrix[:, j]
        frame = frame[d.usable].sort_values(["patient", "order"]).groupby("patient").tail(1)
        frame["z"] = (frame["z"] - frame["z"].mean()) / frame["z"].std(ddof=0)
        ages = " + ".join(c for c in frame.columns if c.startswith("age_"))
        base = f"y ~ {ages} + C(sex) + C(race, Treatment('White')) + hr"
        reduced = smf.logit(base, frame).fit(disp=0)
        full = smf.logit(base + " + z", frame).fit(disp=0)
        assert rows[k]["method"] == "logit"
        assert rows[k]["lrt_chi2"] == pytest.approx(2 * (full.llf - reduced.llf), rel=1e-6)
        assert rows[k]["or_per_sd"] == pytest.approx(np.exp(full.params["z"]), rel=1e-6)
        assert rows[k]["n_pos_patients"] + rows[k]["n_neg_patients"] == len(frame)


def test_batched_equals_one_phenotype_at_a_time():
    """associate_all against associate (statsmodels, scikit-learn, Firth) on the same design: the
    same test, the same out-of-fold AUCs, including a phenotype a covariate level separates."""
    rng = np.random.default_rng(2)
    n = 1200
    age, sex, race, hr = population(rng, n, missing=0.0)
    patient = rng.integers(0, 900, n)
    order = np.arange(n)
    P = 6
    y = (rng.random((n, P)) < expit(-1.8 + 0.3 * rng.normal(size=P) + 0.01 * (age[:, None] - 50))).astype(np.int8)
    y[rng.random((n, P)) < 0.1] = -1  # excluded stays
    asian = np.array([v == "Asian" for v in race])
    y[:, 5] = np.where(asian, 1, np.where(rng.random(n) < 0.05, 1, 0))  # every Asian stay a case
    scores = expit(0.4 * (y == 1) + rng.normal(size=(n, P)))
    d = design(age, sex, {"race": race})
    batched = associate_all(y, scores, d, sex, groups=patient, order=order, folds=4, seed=3)
    for k in range(P):
        use = y[:, k] >= 0
        one = associate(y[use, k], scores[use, k], age[use], sex[use], groups=patient[use], order=order[use],
                        folds=4, seed=3, design=d.matrix[use][:, 1:])
        assert batched[k]["method"] == one["method"]
        assert batched[k]["p_value"] == pytest.approx(one["p_value"], rel=1e-4, abs=1e-12)
        assert batched[k]["or_per_sd"] == pytest.approx(one["or_per_sd"], rel=1e-4)
        # scikit-learn's lbfgs stops at tol 1e-4; Newton's method runs to the optimum
        assert batched[k]["auc_age_sex"] == pytest.approx(one["auc_age_sex"], abs=1e-3)
        assert batched[k]["auc_age_sex_ppg"] == pytest.approx(one["auc_age_sex_ppg"], abs=1e-3)
    assert batched[5]["method"] == "firth" and "race=Asian" in batched[5]["note"]


def test_constant_covariate_gets_a_note():
    rng = np.random.default_rng(4)
    age, sex, _, _ = population(rng, 300)
    d = design(age, sex, {"site": np.array(["A"] * 300, dtype=object), "level": np.full(300, 2.0)})
    assert not any(nm.startswith(("site", "level")) for nm in d.names)
    assert len(d.notes) == 1 and "level" in d.notes[0]  # one text level: no column at all
    assert d.coding["site"]["levels"] == []


@pytest.mark.slow
def test_adjusting_for_a_confounding_covariate_calibrates_the_test():
    """200 null phenotypes x 3 populations: adjusted for race, 3-7% of p-values below 0.05;
    adjusted for age and sex only, far more."""
    rng = np.random.default_rng(5)
    p_adjusted, p_age_sex = [], []
    for _ in range(3):
        y, score, age, sex, race, patient = confounded_nulls(rng, 3000, 200, 0.8)
        order = np.arange(len(patient))
        for d, sink in ((design(age, sex, {"race": race}), p_adjusted), (design(age, sex), p_age_sex)):
            rows = associate_all(y, score, d, sex, groups=patient, order=order, folds=2, seed=0, min_persons=5)
            sink += [r["p_value"] for r in rows if r["method"] != "none"]
    adjusted, age_sex = np.mean(np.array(p_adjusted) < 0.05), np.mean(np.array(p_age_sex) < 0.05)
    assert len(p_adjusted) >= 550
    assert 0.03 <= adjusted <= 0.07, adjusted
    assert age_sex > 0.3, age_sex


def test_report_with_covariates_records_their_coding(tmp_path):
    from helpers import fake_cohort
    cohort, _ = fake_cohort(tmp_path / "c", n=900, pos=(150, 150, 150))
    stays = pl.read_parquet(cohort / "stays.parquet")
    rng = np.random.default_rng(0)
    race = rng.choice(["White", "Black", "Asian", "Pacific", ""], stays.height, p=[0.6, 0.2, 0.15, 0.005, 0.045])
    acuity = rng.choice(["2-Emergent", "3-Urgent", "4-Semi-Urgent"], stays.height)
    spo2 = [None if i < 20 else f"{v:.0f}" for i, v in enumerate(rng.normal(97, 2, stays.height))]
    stays.with_columns(race=pl.Series(race.tolist()).replace("", None), triage_acuity=pl.Series(acuity.tolist()),
                       triage_spo2=pl.Series(spo2, dtype=pl.String)).write_parquet(cohort / "stays.parquet")
    out = tmp_path / "rep"
    rc = main(["report", "--cohort", str(cohort), "--predictions", str(cohort / "predictions.parquet"),
               "--out", str(out), "--min-positives", "50", "--covariates", "race", "triage_acuity", "triage_spo2",
               "--quiet"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["covariates"]["race"]["reference"] == "White"
    race_coding = summary["covariates"]["race"]
    assert race_coding["pooled_into_other"] == [] and "Pacific" in race_coding["levels"]  # one rare level: kept
    assert summary["covariates"]["triage_spo2"]["kind"] == "numeric"
    held_out_missing = int(pl.read_parquet(cohort / "stays.parquet").filter(
        (pl.col("split") == "heldout") & pl.col("triage_spo2").is_null()).height)
    assert summary["stays_without_covariates_left_out"] == held_out_missing
    assert "+ race + triage_acuity + triage_spo2" in summary["association_model"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["covariates"] == ["race", "triage_acuity", "triage_spo2"]
    assert manifest["parameters"]["covariate_coding"]["race"]["reference"] == "White"
    assert "race" in (out / "index.html").read_text()


def test_report_names_the_columns_found_for_an_unknown_covariate(tmp_path, capsys):
    from helpers import fake_cohort
    cohort, _ = fake_cohort(tmp_path / "c")
    rc = main(["report", "--cohort", str(cohort), "--predictions", str(cohort / "predictions.parquet"),
               "--out", str(tmp_path / "rep"), "--min-positives", "50", "--covariates", "Race", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1
    assert "stays.parquet" in err[0] and "'Race'" in err[0] and "age, sex" in err[0] and "--keep-columns" in err[0]
    assert not (tmp_path / "rep").exists()


def test_build_cohort_keeps_visits_columns(sim_data, tmp_path):
    from cohorts import CohortConfig, build_cohort
    out = tmp_path / "cohort"
    build_cohort(sim_data, out, CohortConfig(workers=1, keep_columns=("Race", "triage_acuity", "Triage_HR")))
    stays = pl.read_parquet(out / "stays.parquet")
    visits = pl.read_csv(sim_data / "visits.csv", infer_schema_length=0)
    joined = stays.join(visits.select(pl.col("CSN").alias("stay_id"), "Race", "Triage_acuity", "Triage_HR"),
                        on="stay_id")
    assert joined.height == stays.height
    for ours, theirs in (("race", "Race"), ("triage_acuity", "Triage_acuity"), ("triage_hr", "Triage_HR")):
        assert stays[ours].dtype == pl.String
        assert joined[ours].to_list() == joined[theirs].to_list()  # their original values


@pytest.mark.parametrize("keep, needle", [(["Skin_tone"], "no column 'Skin_tone' to keep"),
                                          (["Age"], "'age', is one of the cohort's own columns")])
def test_build_cohort_rejects_a_column_it_cannot_keep(sim_data, tmp_path, capsys, keep, needle):
    rc = main(["build-cohort", "--data", str(sim_data), "--out", str(tmp_path / "c"), "--keep-columns", *keep,
               "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and needle in err[0] and "visits.csv" in err[0]
    if "no column" in needle:
        assert "columns found: MRN, CSN" in err[0]
    assert not (tmp_path / "c").exists()
