"""The page specs: every figure and detail panel a spec names has its builder in the explorer's
scripts, the scripts never branch on the page's kind, and the data they read is computed once in
Python (the significance lines, the counts by sex and age band), checked against slow versions."""

import re
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from reports.explorer import AGE_BANDS, SCRIPTS, SEXES, phenotype_details
from reports.figures import significance_lines
from reports.pages import compare_page, probe_page, report_page

JS = Path(__file__).resolve().parents[2] / "reports" / "explorer_js"
SPECS = [report_page(True), report_page(False), compare_page(), probe_page()]


def _script() -> str:
    return "\n".join((JS / name).read_text() for name in SCRIPTS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_every_named_figure_and_panel_has_its_builder(spec):
    script = _script()
    for name in spec.figures:
        assert re.search(rf"Explorer\.figures\.{name} = ", script), name
    for name in spec.detail:
        assert re.search(rf"Explorer\.details\.{name} = ", script), name
    # hover templates and filters name columns the page ships
    for template, when in spec.hover:
        for column in re.findall(r"\{(\w+)(?::f)?\}", template) + ([when] if when else []):
            assert column in spec.columns, (spec.kind, column)
    assert set(spec.search) <= set(spec.columns) and spec.key in spec.columns


def test_the_scripts_dispatch_on_the_spec_not_on_the_kind():
    script = _script()
    assert "D.kind" not in script and '"report"' not in script and '"probe"' not in script
    assert len(set(SCRIPTS)) == len(list(JS.glob("*.js")))  # no script left out of the page


def _slow_lines(p, q, alpha):
    tested = [v for v in p if np.isfinite(v)]
    out = []
    if tested:
        out.append(alpha / len(tested))
        reject = multipletests(tested, alpha=alpha, method="fdr_bh")[0]
        if reject.any():
            out.append(max(v for v, r in zip(tested, reject) if r))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_significance_lines_equal_statsmodels_bh(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    p = np.where(rng.random(n) < 0.3, rng.random(n) * 1e-4, rng.random(n))
    p[rng.random(n) < 0.1] = np.nan  # untested phenotypes
    alpha = [0.05, 0.01, 0.2][seed % 3]
    finite = np.isfinite(p)
    q = np.full(n, np.nan)
    if finite.any():
        q[finite] = multipletests(p[finite], method="fdr_bh")[1]
    lines = significance_lines(p, q, alpha)
    assert [line["p"] for line in lines] == pytest.approx(_slow_lines(p, q, alpha))
    assert significance_lines([np.nan], [np.nan], 0.05) == []


def test_counts_by_sex_and_age_band_equal_a_loop():
    rng = np.random.default_rng(0)
    n, k = 300, 4
    y = rng.choice([0, 1, -1], size=(n, k), p=[0.6, 0.3, 0.1])
    age = rng.integers(18, 95, n).astype(float)
    sex = rng.choice(list(SEXES), n)
    counts = np.array(phenotype_details(y, [rng.random((n, k))], age, sex, np.ones(k))["counts"])
    assert counts.shape == (k, len(SEXES), len(AGE_BANDS), 2)
    edges = [*AGE_BANDS, np.inf]
    for j in range(k):
        for s, name in enumerate(SEXES):
            for b in range(len(AGE_BANDS)):
                cell = (sex == name) & (age >= edges[b]) & (age < edges[b + 1])
                assert counts[j, s, b].tolist() == [int(((y[:, j] == 1) & cell).sum()),
                                                    int(((y[:, j] == 0) & cell).sum())]
