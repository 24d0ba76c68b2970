"""``probe --protocol anyppg`` against the AnyPPG release's ``linear_prob.py``, run on the same
embeddings in a throwaway environment (``tests/fixtures/anyppg_release/make_fixtures.py``): the
chosen hyperparameters, the metrics and every bootstrap round."""

import json
from pathlib import Path

import numpy as np
import pytest

from reports.probe_models import release_bootstrap, release_fit, release_labels, release_metrics

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "anyppg_release"
# the release's metric names for this toolkit's
NAMES = {"auc": ("AUROC", "AUROC_OVR"), "macro_f1": ("F1_Macro",), "mae": ("MAE",), "rmse": ("RMSE",),
         "pearson_r": ("Pearson_R",)}


@pytest.fixture(scope="module")
def ref():
    return np.load(FIXTURES / "linear_prob.npz")


@pytest.mark.parametrize("task, kind", [("binary", "binary"), ("multiclass", "multiclass"),
                                        ("regression", "regression")])
def test_probe_equals_the_releases_linear_prob(ref, task, kind):
    info = json.loads((FIXTURES / "fixtures.json").read_text())["linear_prob"][task]
    n = len(ref["X_train"])
    y = ref[f"{task}_y"]
    y_tr, y_te = (y[:n], y[n:]) if kind == "regression" else (y[:n].astype(str), y[n:].astype(str))
    fit = release_fit(ref["X_train"], y_tr, ref["X_test"], kind)
    expected = {k.split("__")[1]: v for k, v in eval(info["best_params"]).items()}  # noqa: S307 - a dict's repr
    assert fit.hyperparameters == expected
    if kind == "regression":
        np.testing.assert_allclose(fit.prediction, ref[f"{task}_pred"], rtol=0, atol=1e-9)
    else:
        np.testing.assert_allclose(fit.prediction[0], ref[f"{task}_prob"], rtol=0, atol=1e-9)
    ours = release_metrics(kind, y_te, fit.prediction)
    ci, rounds = release_bootstrap(kind, y_te, fit.prediction, seed=0)  # their draws after np.random.seed(0)
    checked = 0
    for metric, theirs in NAMES.items():
        key = next((f"{task}_metric_{t}" for t in theirs if f"{task}_metric_{t}" in ref), None)
        if key is None or metric not in ours:
            continue
        assert abs(ours[metric] - float(ref[key])) <= 1e-9, metric
        values = ref[key.replace("_metric_", "_rounds_")]
        values = values[np.isfinite(values)]
        np.testing.assert_allclose(rounds[metric], values, rtol=0, atol=1e-9)
        assert ci[metric] == pytest.approx((np.percentile(values, 2.5), np.percentile(values, 97.5)), abs=1e-12)
        checked += 1
    assert checked >= 2


def test_labels_are_ordered_as_the_releases_label_encoder():
    codes, classes = release_labels(np.array(["10", "9", "10", "2"]))
    assert list(classes) == ["2", "9", "10"] and list(codes) == [2, 1, 2, 0]  # numbers, not text order
    codes, classes = release_labels(np.array(["b", "a"]))
    assert list(classes) == ["a", "b"]


def test_constant_predictions_have_a_pearson_r_of_zero_as_the_release_reports():
    m = release_metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    assert m["pearson_r"] == 0.0 and m["mae"] == pytest.approx(2 / 3)
