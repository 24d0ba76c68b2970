"""Does a report find what the simulator put in, and nothing else? (simulated data only)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl


def check_recovery(phenotypes_path, truth_path, alpha: float = 0.05) -> dict:
    """Compare a report's phenotype table with ``truth.json``.

    Recovered: an injected phecode whose age- and sex-adjusted test is significant after FDR
    (q <= ``alpha``) and whose AUC's 95% interval lies above 0.5. Null phecodes (neither injected
    nor tied to one through the map): the false discovery proportion among them, the share of
    their p-values below ``alpha`` (about ``alpha`` for a calibrated test), and their mean AUC
    minus the mean AUC of age and sex alone.

    Phecodes whose risk a simulated race raises (``truth.json``'s ``race``) are null given age, sex
    and race: counted among the nulls where the report adjusted for a ``race`` covariate (its
    ``summary.json``, beside the table, says), left out otherwise.
    """
    table = pl.read_parquet(phenotypes_path)
    truth = json.loads(Path(truth_path).read_text())
    injected = set(truth["injected"])
    related = set(truth.get("related", []))
    summary_path = Path(phenotypes_path).with_name("summary.json")
    adjusted_for = (json.loads(summary_path.read_text()).get("covariates") or {}) if summary_path.exists() else {}
    confounded = set((truth.get("race") or {}).get("phecodes", []))
    if "race" not in adjusted_for:
        related |= confounded
    rows = {r["phecode"]: r for r in table.iter_rows(named=True)}
    recovered = {}
    for p in sorted(injected):
        r = rows.get(p)
        if r is None:
            recovered[p] = {"reported": False}
            continue
        recovered[p] = {"reported": True, "auc": r["auc"], "auc_ci_low": r["auc_ci_low"], "q_value": r["q_value"],
                        "auc_age_sex": r["auc_age_sex"],
                        "recovered": bool(r["q_value"] is not None and r["q_value"] <= alpha and r["auc_ci_low"] > 0.5)}
    null = table.filter(~pl.col("phecode").is_in(list(injected | related)))
    sig = null["q_value"].fill_null(1.0) <= alpha
    null_p = null["p_value"].drop_nulls().drop_nans()
    discoveries = int((table["q_value"].fill_null(1.0) <= alpha).sum())
    null_auc = float(np.nanmean(null["auc"].to_numpy())) if null.height else float("nan")
    null_age_sex = float(np.nanmean(null["auc_age_sex"].to_numpy().astype(float))) if null.height else float("nan")
    return {
        "injected": recovered,
        "n_injected_reported": sum(v["reported"] for v in recovered.values()),
        "n_injected_recovered": sum(v.get("recovered", False) for v in recovered.values()),
        "n_null_phecodes": null.height,
        "n_null_significant": int(sig.sum()),
        "false_discovery_proportion": (int(sig.sum()) / discoveries) if discoveries else 0.0,
        "null_share_p_below_alpha": float((null_p < alpha).mean()) if len(null_p) else float("nan"),
        "null_mean_auc": null_auc,
        "null_mean_auc_age_sex": null_age_sex,
        "null_mean_auc_minus_age_sex": null_auc - null_age_sex,
        "alpha": alpha,
        "race_confounded_phecodes": len(confounded),
        "race_confounded_counted_as_null": bool(confounded) and "race" in adjusted_for,
    }
