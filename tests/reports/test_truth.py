"""check_recovery's arithmetic on a hand-made phenotype table."""

import json

import polars as pl
import pytest

from reports.truth import check_recovery


def test_check_recovery_counts(tmp_path):
    table = pl.DataFrame({
        "phecode": ["427.21", "428.1", "427.2", "250.2", "272.1", "300.1", "555"],
        "auc": [0.9, 0.7, 0.9, 0.6, 0.5, 0.55, 0.52],
        "auc_ci_low": [0.85, 0.49, 0.85, 0.55, 0.45, 0.5, 0.47],
        "auc_age_sex": [0.6, 0.6, 0.6, 0.55, 0.5, 0.5, 0.5],
        "p_value": [1e-9, 1e-4, 1e-9, 1e-4, 0.03, 0.5, None],
        "q_value": [1e-8, 0.001, 1e-8, 0.001, 0.2, 0.6, None],
    })
    table.write_parquet(tmp_path / "phenotypes.parquet")
    truth = {"injected": {"427.21": 1.0, "428.1": 0.8, "401.1": 0.7}, "related": ["427.2"]}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    c = check_recovery(tmp_path / "phenotypes.parquet", tmp_path / "truth.json")
    assert c["injected"]["427.21"]["recovered"]
    assert not c["injected"]["428.1"]["recovered"]  # significant, but its AUC interval reaches 0.5
    assert c["injected"]["401.1"] == {"reported": False}
    assert (c["n_injected_reported"], c["n_injected_recovered"]) == (2, 1)
    assert c["n_null_phecodes"] == 4 and c["n_null_significant"] == 1
    assert c["false_discovery_proportion"] == pytest.approx(1 / 4)  # 250.2 among 4 discoveries
    assert c["null_share_p_below_alpha"] == pytest.approx(2 / 3)  # 555 has no p-value
    assert c["null_mean_auc_minus_age_sex"] == pytest.approx((0.6 + 0.5 + 0.55 + 0.52) / 4 - (0.55 + 1.5) / 4)
