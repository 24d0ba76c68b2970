"""Probes fitted over an evaluation's folds (:func:`fit_task`), and the intervals of a repeated
evaluation by refitting on subject resamples (:func:`refit_bootstrap`)."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import polars as pl

from phewas.base.progress import progress

from .probe_config import REFIT_SPLITS, ProbeConfig
from .probe_metrics import MAIN_METRIC, METRICS, FoldResult, summarise
from .probe_models import fit_probe, release_fit, release_labels
from .probe_split import plan


def plain_json(value):
    """JSON for numpy scalars in hyperparameters."""
    return value.item() if hasattr(value, "item") else str(value)


def impute(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """NaN (a pulse feature that no window of an example measured) replaced by the training
    median; returns the matrices and the number of examples imputed."""
    missing = np.isnan(X_train).any(1).sum() + np.isnan(X_test).any(1).sum()
    if not missing:
        return X_train, X_test, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nan_to_num(np.nanmedian(X_train, axis=0))
    return (np.where(np.isnan(X_train), med, X_train), np.where(np.isnan(X_test), med, X_test), int(missing))


def fit_fold(X: np.ndarray | None, y: np.ndarray, kind: str, train: np.ndarray, test: np.ndarray, groups: np.ndarray,
             cfg: ProbeConfig, protocol: str, workers: int, name: str = "split", fixed: dict | None = None
             ) -> tuple[FoldResult, list[str]]:
    """One fold: a probe fitted on the ``train`` rows predicts the ``test`` rows (``X`` None: the
    constant reference; ``fixed``: hyperparameters given, no inner search). Returns the fold's
    predictions and notes."""
    y_tr, notes = y[train], []
    if X is None:
        if kind == "regression":
            pred, hyper = np.full(test.sum(), y_tr.mean()), {"constant": float(y_tr.mean())}
        else:
            classes = release_labels(y_tr)[1] if protocol == "anyppg" else np.unique(y_tr)
            counts = np.array([(y_tr == c).sum() for c in classes])
            pred, hyper = (np.tile(counts / counts.sum(), (test.sum(), 1)), classes), {"constant": "prevalence"}
    else:
        X_tr, X_te, imputed = impute(X[train], X[test])
        if imputed:
            notes.append(f"{imputed} examples without a measured feature, imputed with the training median")
        if protocol == "anyppg":
            fit = release_fit(X_tr, y_tr, X_te, kind, workers=workers)
        else:
            fit = fit_probe(X_tr, y_tr, X_te, kind, groups=groups[train], folds=cfg.folds, seed=cfg.seed,
                            multiclass=cfg.multiclass, workers=workers, fixed=fixed)
        pred, hyper = fit.prediction, fit.hyperparameters
    return FoldResult(name, np.flatnonzero(test), y[test], pred, groups[test], int(train.sum()), hyper), notes


def fit_task(X, labels: pl.DataFrame, task: str, kind: str, folds, groups: np.ndarray, cfg: ProbeConfig,
             protocol: str, workers: int, fixed: dict | None = None) -> tuple[list[FoldResult] | None, list[str]]:
    """Every fold of one task: the fold results (None when a fold has too few labelled examples
    to probe) and notes; ``fixed``: hyperparameters given to every fold."""
    col = labels[task]
    have = col.is_not_null().to_numpy()
    y = col.to_numpy().astype(np.float64) if kind == "regression" else col.to_numpy().astype(str)
    out, notes = [], []
    for fold in folds:
        tr, te = have & ~fold.test, have & fold.test
        if te.sum() == 0 and len(folds) > 1:
            continue  # a held-out subject without this task's label
        if tr.sum() < 2 * cfg.folds or te.sum() < 1 or (kind != "regression" and len(np.unique(y[tr])) < 2):
            return None, [f"too few labelled examples ({fold.name}: {int(tr.sum())} to train, {int(te.sum())} to "
                          "test)"]
        result, more = fit_fold(X, y, kind, tr, te, groups, cfg, protocol, workers, fold.name, fixed)
        out.append(result)
        notes += [n for n in more if n not in notes]
    return (out or None), notes


def common_hyperparameters(results) -> dict | None:
    """The hyperparameters the folds of an evaluation chose most often (None for the constant)."""
    chosen = [json.dumps(r.hyper, sort_keys=True, default=plain_json) for r in results or [] if r.hyper
              and "constant" not in r.hyper]
    if not chosen:
        return None
    values, counts = np.unique(chosen, return_counts=True)
    return json.loads(values[int(np.argmax(counts))])


def refit_bootstrap(Xs: dict, labels: pl.DataFrame, task: str, kind: str, cfg: ProbeConfig, protocol: str,
                    rounds: int, seed: int, workers: int, level: float = 0.95, keep_draws: bool = False,
                    fixed: dict | None = None) -> dict:
    """Intervals of a repeated evaluation that hold for the skill on new people: the subjects
    resampled with replacement ``rounds`` times (a subject drawn twice weighs twice, its copies
    kept together on one side of each split), each resample evaluated anew by
    :data:`REFIT_SPLITS` repeated splits with every probe refitted,
    and the percentiles of the mean metric over those evaluations (Efron's bootstrap of the whole
    procedure). ``Xs``: encoder name -> example embeddings (None: the constant). The same
    resamples serve every encoder, so a difference between two is paired. Returns
    ``{"intervals": {name: {metric: (low, high)}}, "pairs": {(a, b): (low, high)}, "interval": text}``
    (the pairs of the task's main metric), and ``"draws"``, each resample's metrics per encoder,
    with ``keep_draws``. ``fixed``: encoder name -> hyperparameters each refit uses instead of
    searching anew (:func:`common_hyperparameters` of the evaluation: 25-40 times faster)."""
    subject = labels["subject"].to_numpy()
    subjects = np.unique(subject)
    members = {s: np.flatnonzero(subject == s) for s in subjects}
    rng = np.random.default_rng([seed, 2027])
    draws: dict = {name: [] for name in Xs}
    class_tasks = [task] if kind != "regression" else []
    for _ in progress(range(rounds), desc=f"refit bootstrap {task}", unit="resample"):
        picked = rng.choice(subjects, len(subjects), replace=True)
        rows = np.concatenate([members[s] for s in picked])
        # a subject drawn twice weighs twice, but its copies stay on one side of every split and
        # inner fold: a copy in training would let the probe recognise its twin in the test part
        sub = labels[rows].with_columns(pl.lit(None, pl.String).alias("split"))
        folds = plan(sub, "repeated", test_fraction=cfg.test_fraction, seed=int(rng.integers(1 << 30)),
                     splits=min(cfg.splits, REFIT_SPLITS), class_tasks=class_tasks).folds
        for name, X in Xs.items():
            results, _ = fit_task(None if X is None else X[rows], sub, task, kind, folds, subject[rows], cfg,
                                  protocol, workers, (fixed or {}).get(name))
            values = summarise(kind, "repeated", [results], rounds=0, seed=0, protocol=protocol).values \
                if results is not None else None
            draws[name].append(values)
    q = 100 * (1 - level) / 2

    def interval(values):
        v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
        return (float(np.percentile(v, q)), float(np.percentile(v, 100 - q))) if len(v) >= 10 else \
            (float("nan"), float("nan"))
    intervals = {name: {m: interval([d[m] if d else None for d in ds]) for m in METRICS[kind]}
                 for name, ds in draws.items()}
    metric = MAIN_METRIC[kind]
    pairs = {(a, b): interval([da[metric] - db[metric] if da and db else None
                               for da, db in zip(draws[a], draws[b])])
             for a, b in itertools.combinations(Xs, 2)}
    how = "probes refitted" + (" with the evaluation's hyperparameters" if fixed else ", hyperparameters searched")
    return {"intervals": intervals, "pairs": pairs,
            "interval": f"bootstrap of {rounds} subject resamples, each evaluated anew "
                        f"({min(cfg.splits, REFIT_SPLITS)} splits, {how})"} | (
        {"draws": draws} if keep_draws else {})
