"""Benchmark: the probe's fit at real scale (after embedding), on synthetic embeddings.

(1) A binary probe of 10,000 examples x 512 dimensions (8,000 training, 300 subjects): the
whole fit (``reports.probe_models.fit_probe``: the penalty search over the paper's grid on 5
inner folds, then the final fit) against (folds + 1) single scikit-learn lbfgs fits at the chosen
``C`` in the same run, and against ``GridSearchCV`` over the same grid and folds (chosen ``C``
and test AUC compared). Targets: at most 30 s, within 1.5x of the single fits.

(2) A DeepBeat-sized binary probe: 536,399 examples x 512 (the official validation part, 518,782
windows of 16 subjects, for training; the test part, 17,617 of 22 subjects), in a child process
whose peak memory is measured. Targets: at most 10 minutes, at most 4 GB.

The embeddings are synthetic, drawn once (seeded): a 512-dimensional latent factor mixed into 512
correlated dimensions plus noise, the label a logistic function of the factor; the inner-fold AUC
peaks inside the grid (at C = 0.1), so the search has a real optimum to find.

    python bench/bench_probe_scale.py [--skip-deepbeat]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def synthetic(n: int, d: int = 512, seed: int = 0, out: Path | None = None, chunk: int = 65536):
    """``(X float32 [n, d], y)``: written chunk by chunk into ``out`` (a memory-mapped ``.npy``) when given."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    beta = rng.normal(size=d) * 0.2
    X = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, d)) if out else \
        np.zeros((n, d), np.float32)
    y = np.zeros(n)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        Z = rng.normal(size=(b - a, d))
        X[a:b] = Z @ A + 0.3 * rng.normal(size=(b - a, d))
        y[a:b] = rng.random(b - a) < expit(Z @ beta - 1.0)
    return X, y


def ten_thousand() -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from reports.probe_models import CS, fit_probe, inner_folds
    X, y = synthetic(10_000)
    groups = np.random.default_rng(1).integers(0, 300, len(y)).astype(str)
    tr = np.arange(len(y)) < 8000
    y_text = y.astype(int).astype(str)
    fit_probe(X[:500], y_text[:500], X[500:600], "binary", groups=groups[:500])  # warm-up (imports)
    t = time.perf_counter()
    fit = fit_probe(X[tr], y_text[tr], X[~tr], "binary", groups=groups[tr], folds=5, seed=0)
    ours = time.perf_counter() - t
    C = fit.hyperparameters["C"]
    auc = roc_auc_score(y[~tr], fit.prediction[0][:, 1])
    cv = inner_folds(groups[tr], y_text[tr], 5, True, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        for _ in range(6):  # (folds + 1) single fits at the chosen C
            make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000)).fit(X[tr], y[tr])
        single = time.perf_counter() - t
        t = time.perf_counter()
        search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
                              {"logisticregression__C": list(CS)}, cv=cv, scoring="roc_auc").fit(X[tr], y[tr])
        grid = time.perf_counter() - t
    grid_auc = roc_auc_score(y[~tr], search.decision_function(X[~tr]))
    return {"fit_10k_s": round(ours, 2), "six_single_lbfgs_fits_at_chosen_C_s": round(single, 2),
            "ratio_fit_to_six_single_fits": round(ours / single, 2), "gridsearchcv_s": round(grid, 2),
            "chosen_C": C, "gridsearchcv_C": search.best_params_["logisticregression__C"],
            "test_auc": round(auc, 5), "gridsearchcv_test_auc": round(grid_auc, 5),
            "test_auc_difference": float(f"{abs(auc - grid_auc):.2g}"),
            "inner_fold_auc_by_C": {str(k): round(v, 5) for k, v in fit.scores.items()}}


def deepbeat_child(path: str) -> None:
    """In a child process: fit the DeepBeat-sized probe on the memory-mapped embeddings."""
    from sklearn.metrics import roc_auc_score

    from reports.probe_models import fit_probe
    X = np.load(path, mmap_mode="r")
    y = np.load(path.replace(".npy", "-y.npy"))
    n_train = 518_782
    rng = np.random.default_rng(2)
    groups = np.r_[rng.integers(0, 16, n_train), 100 + rng.integers(0, 22, len(y) - n_train)].astype(str)
    X_train = np.asarray(X[:n_train])  # as the probe holds the training part: one float32 copy
    y_text = y.astype(int).astype(str)
    t = time.perf_counter()
    fit = fit_probe(X_train, y_text[:n_train], X[n_train:], "binary", groups=groups[:n_train], folds=5, seed=0)
    wall = time.perf_counter() - t
    print(json.dumps({"fit_s": round(wall, 1), "C": fit.hyperparameters["C"],
                      "test_auc": round(roc_auc_score(y[n_train:], fit.prediction[0][:, 1]), 4),
                      "inner_fold_auc_by_C": {str(k): round(v, 5) for k, v in fit.scores.items()}}))


def deepbeat(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "deepbeat_sized.npy"
    if not path.exists():
        _, y = synthetic(536_399, out=path)
        np.save(folder / "deepbeat_sized-y.npy", y)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"deepbeat_sized_fit_s": r["fit_s"], "deepbeat_sized_process_s": round(wall, 1),
            "deepbeat_sized_peak_rss_gb": round(peak, 2), "deepbeat_sized_C": r["C"],
            "deepbeat_sized_test_auc": r["test_auc"], "deepbeat_sized_inner_fold_auc_by_C": r["inner_fold_auc_by_C"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-deepbeat", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench/out/probe_scale"))
    ap.add_argument("--child", default=None)
    a = ap.parse_args()
    if a.child:
        deepbeat_child(a.child)
        return
    result = {"bench": "probe_scale", **ten_thousand()}
    if not a.skip_deepbeat:
        result.update(deepbeat(a.out))
    result |= {"cores": os.cpu_count(), "command": "python bench/bench_probe_scale.py",
               "embeddings": "synthetic (512-d latent factor mixed into 512 dimensions, logistic label)"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
