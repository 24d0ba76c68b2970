"""``phewas features``: a pulse-feature baseline that ``report`` and ``compare`` take as they take a
fine-tuned model.

Per window the classic pulse features (:mod:`encoder.pulse`), per stay their median over the
stay's windows in the segment store; per target phecode an L2-penalised logistic regression on
the standardised features, age (linear and squared) and sex, fitted on the stays that
fine-tuning trains on (:data:`~encoder.targets.TRAIN_SPLITS`, the same target rule). The run
folder holds ``predictions.parquet`` in ``predict``'s format, the per-stay features, the
coefficients, and ``heart_rate.parquet``: heart rate alone as every phecode's score.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
from joblib import Parallel, delayed

from cohorts.splits import SPLITS, TRAIN_SPLITS
from cohorts.store import open_segments
from phewas.base.errors import PhewasError
from phewas.base.io import atomic_dir, file_sha256, read_manifest, write_json, write_manifest
from phewas.base.progress import progress
from phewas.base.settings import check_settings, setting

from .predictions import predictions_frame, write_predictions_manifest
from .pulse import FEATURES, NAMES, windows_features
from .targets import target_phecodes

STAY_CHUNK = 256  # stays per feature-extraction task
QUALITY = "invalid_frac"  # the store's share of bridged samples per window, kept as a feature


@dataclass
class FeaturesConfig:
    """Settings of ``features``: each field is a flag of the same name, and a key of a
    ``[models.NAME]`` table with ``kind = "features"`` in ``run-all`` (but ``split``, which
    ``[predict]`` sets, and ``min_positives``, which ``[report]`` sets)."""

    split: str = setting("heldout", "the cohort split to predict", table="predict")
    min_train_positives: int = setting(20, "targets: phecodes with at least K positive training stays "
                                       "(fine-tuning's rule)")
    l2_c: float = setting(1.0, "inverse L2 penalty of the logistic regressions (scikit-learn's C)")
    workers: int | None = setting(None, "processes (default: all cores)")
    min_positives: int = setting(100, "the heart-rate-only report's phecodes: at least this many positive and "
                                 "control stays", table="report")

    def __post_init__(self):
        check_settings(
            self,
            (self.split in SPLITS, "split", f"one of {SPLITS}"),
            (self.min_train_positives >= 1, "min_train_positives", "at least 1"),
            (self.l2_c > 0, "l2_c", "more than 0"),
            (self.workers is None or self.workers >= 1, "workers", "at least 1"),
            (self.min_positives >= 1, "min_positives", "at least 1"),
        )


def _chunk_features(store_path: Path, ranges: list[tuple[int, int]]) -> np.ndarray:
    """Median features per stay for ``(first_row, end_row)`` ranges of the store's PPG windows."""
    ppg = np.load(store_path / "ppg.npy", mmap_mode="r")
    out = np.full((len(ranges), len(NAMES)), np.nan)
    for i, (a, b) in enumerate(ranges):
        if b > a:
            f = windows_features(np.asarray(ppg[a:b], dtype=np.float64))
            if np.isfinite(f).any():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
                    out[i] = np.nanmedian(f, axis=0)
    return out


def stay_features(store, stay_ids: list[str], workers: int = 1) -> pl.DataFrame:
    """``stay_id``, ``n_windows``, each feature's median over the stay's windows (NaN without a
    window or a measurable beat) and the median ``invalid_frac``."""
    ranges = [store.ppg_rows(s) for s in stay_ids]
    chunks = [ranges[i:i + STAY_CHUNK] for i in range(0, len(ranges), STAY_CHUNK)]
    jobs = (delayed(_chunk_features)(store.path, c) for c in chunks)
    parts = Parallel(n_jobs=workers, return_as="generator")(jobs)
    feats = np.vstack([np.zeros((0, len(NAMES)))] + list(progress(parts, total=len(chunks), desc="pulse features",
                                                                   unit="chunk")))
    quality = (store.index.group_by("stay_id").agg(pl.col(QUALITY).median())
               .rename({QUALITY: f"median_{QUALITY}"}))
    return (pl.DataFrame({"stay_id": stay_ids, "n_windows": [b - a for a, b in ranges],
                          **{n: feats[:, j] for j, n in enumerate(NAMES)}},
                         schema_overrides={"n_windows": pl.Int32})
            .join(quality, on="stay_id", how="left"))


def feature_matrix(frame: pl.DataFrame, train: np.ndarray) -> tuple[np.ndarray, list[str], dict]:
    """Standardised features (NaN imputed with the training median), standardised age and its
    square, sex indicators (F, U). Centres and scales come from the ``train`` rows only."""
    cols = [*NAMES, f"median_{QUALITY}"]
    X = frame.select(cols).to_numpy().astype(np.float64)
    med = np.nanmedian(np.where(train[:, None], X, np.nan), axis=0)
    med = np.where(np.isfinite(med), med, 0.0)
    X = np.where(np.isfinite(X), X, med)
    mu, sd = X[train].mean(axis=0), X[train].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    X = (X - mu) / sd
    age = frame["age"].cast(pl.Float64).to_numpy()
    a_mu = float(np.nanmean(age[train]))
    a_sd = float(np.nanstd(age[train])) or 1.0
    z = (np.where(np.isfinite(age), age, a_mu) - a_mu) / a_sd  # an unknown age: the training mean
    sex = frame["sex"].to_numpy()
    cov = np.column_stack([z, z ** 2, sex == "F", sex == "U"]).astype(np.float64)
    names = cols + ["age", "age_squared", "sex_F", "sex_U"]
    scaling = {"impute_median": med.tolist(), "mean": mu.tolist(), "sd": sd.tolist(), "age_mean": a_mu,
               "age_sd": a_sd}
    return np.hstack([X, cov]), names, scaling


class Fit(NamedTuple):
    """One phecode's logistic regression: probabilities of the new stays, coefficients, intercept,
    and the labelled (and positive) training stays it was fitted on."""

    proba: np.ndarray
    coef: np.ndarray
    intercept: float
    n_train: int
    n_pos_train: int


def _fit_one(X, y, X_new, c) -> Fit | None:
    """Fit on the labelled rows of ``y`` (NaN = excluded); None with a single class."""
    from sklearn.linear_model import LogisticRegression
    use = np.isfinite(y)
    yy = y[use].astype(np.int64)
    if yy.min() == yy.max():
        return None
    model = LogisticRegression(C=c, max_iter=2000).fit(X[use], yy)
    return Fit(model.predict_proba(X_new)[:, 1], model.coef_[0], float(model.intercept_[0]), int(use.sum()),
               int(yy.sum()))


def pulse_baseline(cohort, run, cfg: FeaturesConfig | None = None, *, overwrite: bool = False) -> dict:
    """Features, per-phecode models and predictions for ``cfg.split``; writes the run folder and
    returns its manifest."""
    cfg = cfg or FeaturesConfig()
    cohort, run = Path(cohort), Path(run)
    workers = cfg.workers or os.cpu_count() or 1
    store = open_segments(cohort)
    labels = pl.read_parquet(cohort / "labels.parquet")
    stays = pl.read_parquet(cohort / "stays.parquet", columns=["stay_id", "split", "age", "sex"])
    targets = target_phecodes(store, labels, cfg.min_train_positives)
    if not targets:
        raise PhewasError(f"no phecode has {cfg.min_train_positives} positive training stays; lower "
                          "--min-train-positives")
    chosen = stays.filter(pl.col("split").is_in([*TRAIN_SPLITS, cfg.split])).sort("stay_id")
    feats = stay_features(store, chosen["stay_id"].to_list(), workers)
    frame = chosen.join(feats, on="stay_id", how="left", maintain_order="left")
    has = frame["n_windows"].to_numpy() > 0
    train = frame["split"].is_in(list(TRAIN_SPLITS)).to_numpy() & has
    new = (frame["split"] == cfg.split).to_numpy()
    if not train.any():
        raise PhewasError(f"{cohort}: no training stay ({', '.join(TRAIN_SPLITS)}) has a PPG window")
    X, names, scaling = feature_matrix(frame, train)
    y = (frame.select("stay_id").join(labels.select("stay_id", *targets), on="stay_id", how="left",
                                      maintain_order="left").select(targets).to_numpy().astype(np.float32))
    X_train, X_new = X[train], X[new & has]  # one copy each, shared by every task (joblib memory-maps them)
    jobs = progress(range(len(targets)), desc="logistic models", unit="phecode")
    fits = Parallel(n_jobs=workers)(delayed(_fit_one)(X_train, y[train, j], X_new, cfg.l2_c) for j in jobs)
    prior = np.nanmean(np.where(np.isfinite(y[train]), y[train], np.nan), axis=0)
    probs = np.tile(prior, (int(new.sum()), 1))
    has_new = has[new]
    coefs = []
    for j, f in enumerate(fits):
        if f is None:  # a single class among the labelled training stays: the prevalence
            continue
        probs[has_new, j] = f.proba
        coefs.append({"phecode": targets[j], "n_train": f.n_train, "n_pos_train": f.n_pos_train,
                      "intercept": f.intercept, **dict(zip(names, f.coef.tolist()))})
    ids = frame.filter(pl.Series(new))["stay_id"]
    n_windows = frame.filter(pl.Series(new))["n_windows"].fill_null(0)
    hr = frame.filter(pl.Series(new))["heart_rate"].to_numpy()
    hr = np.where(np.isfinite(hr) & has_new, hr, np.nanmedian(frame["heart_rate"].to_numpy()[train]))
    # heart rate alone as every target's score; stays without a window or a measured rate carry
    # the training median and n_windows 0, so that report leaves them out
    hr_windows = np.where(np.isfinite(frame.filter(pl.Series(new))["heart_rate"].to_numpy()), n_windows, 0)
    predictions = predictions_frame(ids, n_windows, probs, targets)
    heart_rate = pl.DataFrame({"stay_id": ids, "n_windows": pl.Series(hr_windows, dtype=pl.Int32),
                               **{p: hr.astype(np.float32) for p in targets}})
    params = asdict(cfg) | {"features": FEATURES, "covariates": names[len(NAMES) + 1:],
                            "training_splits": list(TRAIN_SPLITS)}
    counts = {"targets": len(targets), "models_fitted": len(coefs), "stays_featurised": frame.height,
              "training_stays": int(train.sum()), "stays": int(new.sum()),
              "stays_without_windows_given_prior": int((~has_new).sum()),
              "stays_without_heart_rate": int((hr_windows == 0).sum())}
    store_manifest = store.path / "manifest.json"
    with atomic_dir(run, overwrite=overwrite) as tmp:
        frame.write_parquet(tmp / "features.parquet")
        pl.DataFrame(coefs).write_parquet(tmp / "coefficients.parquet")
        predictions.write_parquet(tmp / "predictions.parquet")
        heart_rate.write_parquet(tmp / "heart_rate.parquet")
        write_json(tmp / "targets.json", targets)
        write_json(tmp / "scaling.json", {"columns": names, **scaling})
        write_predictions_manifest(tmp, command="features", cohort=cohort, split=cfg.split, stays=int(new.sum()),
                                   phecodes=len(targets),
                                   stays_without_windows=counts["stays_without_windows_given_prior"])
        manifest = write_manifest(tmp, command="features",
                                  inputs={"cohort": str(cohort.resolve()),
                                          "segments": {"path": str(store_manifest.resolve()),
                                                       "sha256": file_sha256(store_manifest),
                                                       "created": read_manifest(store.path).get("created")}},
                                  parameters=params, counts=counts)
    return manifest

