import json

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from helpers import fake_cohort
from reference_association import associate, covariates
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from phewas.base.auc import auc_delong
from phewas.base.errors import InputError
from phewas.cli import main
from reports.association import latest_per_patient
from reports.multiple_testing import adjust
from reports.report import ReportConfig, make_report


def direct_delong(s, y):
    """O(m x n) reference: DeLong's structural components from the pairwise kernel."""
    x, z = s[y == 1], s[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    return psi.mean(), psi.mean(1).var(ddof=1) / len(x) + psi.mean(0).var(ddof=1) / len(z)


@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_auc_matches_sklearn_with_ties_and_nulls(decimals):
    rng = np.random.default_rng(decimals or 0)
    n, p = 3000, 40
    y = (rng.random((n, p)) < rng.uniform(0.02, 0.4, p)).astype(np.int8)
    s = rng.normal(size=(n, p)) + 0.8 * y
    if decimals is not None:
        s = np.round(s, decimals)
    y[rng.random((n, p)) < 0.15] = -1
    r = auc_delong(s, y)
    auc, m, k = r.auc, r.n_pos, r.n_neg
    for j in range(p):
        keep = y[:, j] >= 0
        assert abs(auc[j] - roc_auc_score(y[keep, j], s[keep, j])) < 1e-9
        assert m[j] == (y[:, j] == 1).sum() and k[j] == (y[:, j] == 0).sum()


@pytest.mark.parametrize("seed", range(5))
def test_delong_variance_matches_direct_computation(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 200))
    y = (rng.random(n) < 0.3).astype(int)
    y[:2] = [0, 1]
    s = np.round(rng.normal(size=n) + y, 1)
    r = auc_delong(s, y)
    a, v = r.auc, r.var
    a2, v2 = direct_delong(s, y)
    assert abs(a - a2) < 1e-12 and abs(v - v2) < 1e-12


def test_auc_edge_cases():
    r = auc_delong(np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([[1, 0], [1, 0]]))
    assert np.isnan(r.auc).all()
    with pytest.raises(ValueError):
        auc_delong(np.array([np.nan, 1.0]), np.array([0, 1]))


def test_bh_matches_statsmodels():
    p = np.random.default_rng(1).random(500) ** 3
    np.testing.assert_allclose(adjust(p)[0], multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    q, bonf = adjust(np.array([0.0001, np.nan, 0.02, 0.5]))
    assert np.isnan(q[1]) and list(bonf) == [True, False, False, False]


def test_association_separates_confounded_from_real_signal():
    rng = np.random.default_rng(0)
    n = 4000
    age = rng.uniform(20, 90, n)
    sex = rng.choice(["F", "M"], n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(age - 70) / 12))).astype(int)
    confounded = 1 / (1 + np.exp(-((age - 55) / 10 + rng.normal(0, 1, n))))  # knows only age
    real = 1 / (1 + np.exp(-((age - 55) / 10 + 1.5 * y + rng.normal(0, 1, n))))
    a = associate(y, confounded, age, sex, seed=0)
    b = associate(y, real, age, sex, seed=0)
    assert a["p_value"] > 1e-3 and abs(a["auc_age_sex_ppg"] - a["auc_age_sex"]) < 0.01
    assert b["p_value"] < 1e-10 and b["or_per_sd"] > 1.5 and b["auc_age_sex_ppg"] > b["auc_age_sex"] + 0.03


def test_latest_per_patient_against_a_loop():
    rng = np.random.default_rng(3)
    groups = rng.choice(["a", "b", "c", "d"], 40)
    order = rng.integers(0, 10, 40)  # ties: the later row wins
    expected = np.zeros(40, dtype=bool)
    for g in np.unique(groups):
        rows = [i for i in range(40) if groups[i] == g]
        expected[max(rows, key=lambda i: (order[i], i))] = True
    np.testing.assert_array_equal(latest_per_patient(groups, order), expected)


def test_association_tests_persons_not_stays():
    rng = np.random.default_rng(5)
    n = 1500
    age, sex = rng.uniform(20, 90, n), rng.choice(["F", "M"], n)
    y = (rng.random(n) < 0.1).astype(int)
    prob = 1 / (1 + np.exp(-(rng.normal(size=n) + 0.3 * y)))
    one = associate(y, prob, age, sex, seed=0)
    # every patient seen four times with the same label and score: the evidence is unchanged
    rep = lambda a: np.repeat(a, 4)  # noqa: E731
    times = np.tile(np.arange(4), n)
    four = associate(rep(y), rep(prob), rep(age), rep(sex), groups=rep(np.arange(n)), order=times, seed=0)
    assert four["p_value"] == pytest.approx(one["p_value"], rel=1e-9) and four["n_pos_patients"] == y.sum()
    # the reference: statsmodels on the latest stays, written out
    X = sm.add_constant(covariates(age, sex))
    z = np.log(prob / (1 - prob))
    full = sm.Logit(y, np.column_stack([X, (z - z.mean()) / z.std()])).fit(disp=0)
    lr = 2 * (full.llf - sm.Logit(y, X).fit(disp=0).llf)
    assert one["lrt_chi2"] == pytest.approx(lr, rel=1e-6) and one["or_per_sd"] == pytest.approx(np.exp(full.params[-1]))
    # the same stays treated as independent: four times the evidence, none of it real
    naive = associate(rep(y), rep(prob), rep(age), rep(sex), seed=0)
    assert naive["lrt_chi2"] == pytest.approx(4 * one["lrt_chi2"], rel=1e-6) and naive["p_value"] < one["p_value"]


def test_spline_is_cubic_between_knots_and_linear_outside():
    from reports.adjustment import rcs_basis

    x = np.linspace(0, 100, 1001)
    B = rcs_basis(x, 5)
    assert B.shape == (1001, 5)
    knots = np.quantile(x, np.linspace(0.05, 0.95, 6))
    for col in B.T:
        d2 = np.diff(col, 2)  # second differences: zero where the function is linear
        assert np.allclose(d2[x[1:-1] < knots[0] - 0.2], 0, atol=1e-9)
        assert np.allclose(d2[x[1:-1] > knots[-1] + 0.2], 0, atol=1e-9)
    assert np.abs(np.diff(B[:, 1], 2)[(x[1:-1] > knots[1]) & (x[1:-1] < knots[-1])]).max() > 1e-6
    assert rcs_basis(np.repeat([30.0, 40.0], 50), 5).shape[1] == 1  # two ages: linear only


def nonlinear_age_null(rng, n=1500, shape=0):
    """Risk follows age as a sigmoid (shape 0) or a mid-life hump (1); the score carries a
    saturating 'vascular age' and nothing else: any association beyond age is false."""
    age = np.round(rng.uniform(18, 90, n))
    sex = rng.choice(["F", "M"], n)
    risk = (3 / (1 + np.exp(-(age - 65) / 3)) - 3.5) if shape == 0 else -2 + 1.5 * np.exp(-((age - 45) / 8) ** 2)
    y = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    prob = 1 / (1 + np.exp(-(2 * np.tanh((age - 55) / 8) + 0.7 * rng.normal(size=n))))
    return y, prob, age, sex


@pytest.mark.slow
def test_spline_adjustment_is_calibrated_when_age_risk_is_not_linear():
    rng = np.random.default_rng(11)
    p_spline, p_quad = [], []
    for rep in range(160):
        y, prob, age, sex = nonlinear_age_null(rng, shape=rep % 2)
        p_spline.append(associate(y, prob, age, sex, folds=2)["p_value"])
        p_quad.append(associate(y, prob, age, sex, folds=2, age_df=1)["p_value"])
    share = np.mean(np.array(p_spline) < 0.05)
    assert 0.01 <= share <= 0.09, share  # nominal 5%; 160 studies: +-3.5% at 2 sd
    assert np.mean(np.array(p_quad) < 0.05) > 0.3  # a linear age term does not remove the confounding


def test_report_outputs_and_min_positive_edge(tmp_path):
    cohort, labels = fake_cohort(tmp_path / "c")
    out = tmp_path / "rep"
    rc = main(["report", "--cohort", str(cohort), "--predictions", str(cohort / "predictions.parquet"),
               "--out", str(out), "--min-positives", "100", "--quiet"])
    assert rc == 0
    ph = pl.read_csv(out / "phenotypes.csv", schema_overrides={"phecode": pl.String})
    assert sorted(ph["phecode"]) == ["250.2", "401.1"]  # 100 positives in, 99 out
    assert ph.columns[:8] == ["phecode", "description", "chapter", "n_pos", "n_neg", "auc", "auc_ci_low", "auc_ci_high"]
    assert {"auc_age_sex", "auc_age_sex_ppg", "or_per_sd", "p_value", "q_value", "bonferroni"} <= set(ph.columns)
    # endocrine/metabolic comes before circulatory system in the standard order
    assert ph["phecode"].to_list() == ["250.2", "401.1"]
    assert ph.filter(pl.col("phecode") == "401.1")["n_pos"][0] == 100
    # null labels left out: the AUC equals sklearn on the non-null held-out stays
    held = labels.head(550)
    pred = pl.read_parquet(cohort / "predictions.parquet").head(550)
    keep = held["401.1"].is_not_null().to_numpy()
    ref = roc_auc_score(held["401.1"].to_numpy()[keep], pred["401.1"].to_numpy()[keep])
    assert abs(ph.filter(pl.col("phecode") == "401.1")["auc"][0] - ref) < 1e-9
    s = json.loads((out / "summary.json").read_text())
    assert s["n_phenotypes"] == 2 and set(s["auc_at_least"]) == {"0.5", "0.6", "0.7"}
    assert s["association_model"].startswith("logit P(phenotype) ~ rcs(age, 5 df")
    ch = pl.read_csv(out / "chapters.csv")
    assert ch["n_phenotypes"].sum() == 2
    page = (out / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 4 and 'src="http' not in page and "<table" in page
    for f in ("manhattan_auc", "manhattan_association", "chapter_auc", "auc_histogram", "top_phenotypes"):
        assert (out / f"{f}.png").stat().st_size > 0 and (out / f"{f}.svg").exists()


def test_stays_without_windows_are_left_out_and_counted(tmp_path):
    cohort, labels = fake_cohort(tmp_path / "c")
    pred = pl.read_parquet(cohort / "predictions.parquet")
    rng = np.random.default_rng(5)
    none = rng.random(pred.height) < 0.15  # no valid window: predict gave them the prior
    pred = pred.with_columns(pl.Series("n_windows", np.where(none, 0, 20), dtype=pl.Int32),
                             *[pl.when(pl.Series(none)).then(pl.lit(0.2, pl.Float32)).otherwise(pl.col(c))
                               .alias(c) for c in ("401.1", "427.21", "250.2")])
    pred.write_parquet(cohort / "predictions.parquet")
    cfg = ReportConfig(min_positives=50, association=False)
    s = make_report(cohort, cohort / "predictions.parquet", tmp_path / "r1", cfg)
    held = np.arange(pred.height) < 550
    assert s["stays_without_windows_left_out"] == int((none & held).sum()) and s["n_stays"] == int((~none & held).sum())
    y, x = labels["401.1"].to_numpy(), pred["401.1"].to_numpy()
    keep = held & ~none & ~np.isnan(y.astype(float))
    ph = pl.read_parquet(tmp_path / "r1" / "phenotypes.parquet").filter(pl.col("phecode") == "401.1")
    assert ph["auc"][0] == pytest.approx(roc_auc_score(y[keep], x[keep]))
    # with them, the tied constant pulls the AUC toward 0.5
    s2 = make_report(cohort, cohort / "predictions.parquet", tmp_path / "r2",
                     ReportConfig(min_positives=50, association=False, include_stays_without_windows=True))
    ph2 = pl.read_parquet(tmp_path / "r2" / "phenotypes.parquet").filter(pl.col("phecode") == "401.1")
    assert s2["stays_without_windows_left_out"] == 0 and abs(ph2["auc"][0] - 0.5) < abs(ph["auc"][0] - 0.5)


def test_top_figure_leaves_out_non_specific_phenotypes():
    from reports.figures import non_specific

    def is_non_specific(text):
        return pl.DataFrame({"d": [text]}).select(non_specific(pl.col("d")))["d"][0]

    assert is_non_specific("Other anemias") and is_non_specific("Chest pain NOS")
    assert is_non_specific("Fracture, unspecified") and is_non_specific("Diseases of other endocrine glands")
    assert not is_non_specific("Essential hypertension") and not is_non_specific("Nosebleed")
    assert not is_non_specific("Mother-to-child transmission") and not is_non_specific(None)


def test_phecodes_without_a_model_are_listed_as_not_trained(tmp_path):
    cohort, labels = fake_cohort(tmp_path / "c")
    held = labels.head(550)
    counts = {c: int((held[c] == 1).sum()) for c in ("401.1", "427.21", "250.2")}
    pl.DataFrame({"phecode": list(counts), "n_cases_heldout": list(counts.values()),
                  "n_controls_heldout": [400] * 3, "n_cases_pretrain_train": [8, 9, 30],
                  "n_cases_pretrain_test": [1, 1, 3]}).join(
        pl.read_parquet(cohort / "phecodes.parquet"), on="phecode").write_parquet(cohort / "phecodes.parquet")
    predictions = pl.read_parquet(cohort / "predictions.parquet").drop("427.21", "250.2")
    predictions.write_parquet(cohort / "predictions.parquet")
    s = make_report(cohort, cohort / "predictions.parquet", tmp_path / "r", ReportConfig(min_positives=99,
                                                                                        association=False))
    nt = pl.read_csv(tmp_path / "r" / "not_trained.csv", schema_overrides={"phecode": pl.String})
    assert s["n_not_trained"] == 2 and sorted(nt["phecode"]) == ["250.2", "427.21"]
    assert nt.filter(pl.col("phecode") == "427.21")["n_pos_training"][0] == 10


def first_row(value, column):
    return pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)


@pytest.mark.parametrize("mutate,needle", [
    (lambda p: p.with_columns(first_row(float("nan"), "401.1")), "column '401.1'"),
    (lambda p: p.with_columns(first_row("x-999", "stay_id")), "not in the cohort"),
    (lambda p: p.tail(p.height - 10), "have no prediction"),
    (lambda p: p.with_columns(pl.lit(0.5).alias("999.99")), "not phecodes of the cohort"),
])
def test_report_bad_predictions(tmp_path, mutate, needle):
    cohort, _ = fake_cohort(tmp_path / "c")
    bad = tmp_path / "bad.parquet"
    mutate(pl.read_parquet(cohort / "predictions.parquet")).write_parquet(bad)
    with pytest.raises(InputError, match=needle):
        make_report(cohort, bad, tmp_path / "rep", ReportConfig(min_positives=10))
    assert not (tmp_path / "rep").exists()


def test_report_empty_selection(tmp_path):
    cohort, _ = fake_cohort(tmp_path / "c")
    with pytest.raises(InputError, match="no phecode has at least 1000"):
        make_report(cohort, cohort / "predictions.parquet", tmp_path / "rep", ReportConfig(min_positives=1000))
