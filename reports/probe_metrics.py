"""A probe's metrics, and what they amount to over an evaluation's folds, with intervals that say
what they are.

Per task: MAE, RMSE and Pearson r for values; AUC (one-vs-rest macro over the classes a test
part holds), macro-F1 and balanced accuracy for classes (equal to scikit-learn's; the AUC from
the toolkit's one AUC routine, :func:`phewas.base.auc.auc_delong`).

Over an evaluation (:mod:`reports.probe_split`):

* ``split``: the metric of the test part, with a percentile interval from a bootstrap of the test
  subjects - not given with fewer than :data:`MIN_BOOTSTRAP_SUBJECTS` test subjects (two subjects
  have three distinct resamples: an "interval" that is just their values). Under the release's
  protocol, its bootstrap of test rows instead.
* ``repeated``: the mean of the splits' metrics, with the corrected resampled t interval of
  Nadeau & Bengio (2003): ``mean +- t(K - 1) s sqrt(1/K + n_test/n_train)``, whose second term
  accounts for the splits sharing their training subjects (the plain spread of the splits'
  metrics is narrower than the uncertainty of their mean about the skill on new subjects).
* ``loso``: the metric of every subject's held-out predictions pooled, with a percentile interval
  from a bootstrap of the subjects.

``bench/bench_probe_calibration.py`` measured these against a known skill on simulated datasets of
6, 12 and 24 subjects; ``docs/statistics.md`` has the coverage. Comparisons between two encoders
are paired: the difference of their metrics on the same folds and subjects, with the same kind of
interval computed on the differences (one bootstrap resample serving both encoders).

Nadeau C, Bengio Y. "Inference for the generalization error." Machine Learning 52:239-281 (2003).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from phewas.base.auc import auc as base_auc

METRICS = {"regression": ("mae", "rmse", "pearson_r"), "binary": ("auc", "macro_f1", "balanced_accuracy"),
           "multiclass": ("auc", "macro_f1", "balanced_accuracy")}
MAIN_METRIC = {"binary": "auc", "multiclass": "auc", "regression": "mae"}
HIGHER_IS_BETTER = {"auc": True, "macro_f1": True, "balanced_accuracy": True, "pearson_r": True, "mae": False,
                    "rmse": False}
MIN_BOOTSTRAP_SUBJECTS = 5
NAN2 = (float("nan"), float("nan"))


def auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of one score (:func:`phewas.base.auc.auc`); NaN without both classes."""
    return base_auc(score, positive)


def task_metrics(kind: str, y, pred) -> dict:
    """The task's metrics for one set of test examples, from counts and ranks (equal to
    scikit-learn's ``roc_auc_score``, ``f1_score(average="macro")`` and
    ``balanced_accuracy_score``, checked in ``tests/reports/test_probe.py``)."""
    if kind == "regression":
        err = pred - y
        r = float(np.corrcoef(pred, y)[0, 1]) if np.std(pred) > 0 and np.std(y) > 0 else float("nan")
        return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2))), "pearson_r": r}
    proba, classes = pred
    predicted = classes[np.argmax(proba, axis=1)]
    present = np.unique(y)
    if len(present) < 2:
        a = float("nan")
    elif len(classes) == 2:
        a = auc(y == classes[1], proba[:, 1])
    else:  # one-vs-rest, macro, over the classes the test part holds (renormalised)
        keep = np.isin(classes, present)
        p = proba[:, keep] / proba[:, keep].sum(1, keepdims=True)
        a = (float(np.mean([auc(y == c, p[:, j]) for j, c in enumerate(classes[keep])])) if keep.sum() > 2
             else auc(y == classes[keep][1], p[:, 1]))
    labels, codes = np.unique(np.concatenate([y, predicted]), return_inverse=True)
    truth, guess = codes[:len(y)], codes[len(y):]
    k = len(labels)
    tp = np.bincount(truth[truth == guess], minlength=k).astype(np.float64)
    n_true, n_guess = np.bincount(truth, minlength=k), np.bincount(guess, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(n_true + n_guess > 0, 2 * tp / (n_true + n_guess), 0.0)
        recall = tp[n_true > 0] / n_true[n_true > 0]
    return {"auc": a, "macro_f1": float(f1.mean()), "balanced_accuracy": float(recall.mean())}


@dataclass
class FoldResult:
    """One encoder's predictions for one fold's test examples of one task: ``rows`` (positions
    among the dataset's examples), ``y``, ``pred`` (values, or ``(proba [n, k], classes)``),
    ``groups`` (their subjects), ``n_train`` and the chosen ``hyper``-parameters."""

    name: str
    rows: np.ndarray
    y: np.ndarray
    pred: object
    groups: np.ndarray
    n_train: int
    hyper: dict = field(default_factory=dict)


def subset(kind: str, f: FoldResult, idx: np.ndarray) -> tuple:
    """``(y, pred)`` of rows ``idx`` of a fold."""
    return f.y[idx], (f.pred[idx] if kind == "regression" else (f.pred[0][idx], f.pred[1]))


def pooled(kind: str, folds: list[FoldResult]) -> FoldResult:
    """Every fold's predictions as one (leave-one-subject-out: each example predicted once); class
    probabilities aligned on the union of the folds' classes (0 for a class a fold's probe never
    saw)."""
    y = np.concatenate([f.y for f in folds])
    groups = np.concatenate([f.groups for f in folds])
    rows = np.concatenate([f.rows for f in folds])
    if kind == "regression":
        pred = np.concatenate([f.pred for f in folds])
    else:
        classes = np.unique(np.concatenate([f.pred[1] for f in folds]))
        proba = np.zeros((len(y), len(classes)))
        a = 0
        for f in folds:
            cols = np.searchsorted(classes, f.pred[1])
            proba[a:a + len(f.y), cols] = f.pred[0]
            a += len(f.y)
        pred = (proba, classes)
    return FoldResult("pooled", rows, y, pred, groups, int(np.mean([f.n_train for f in folds])))


def _members(groups: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    uniq, inv = np.unique(groups, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    return uniq, np.split(order, np.cumsum(np.bincount(inv, minlength=len(uniq)))[:-1])


def _quiet(fn, *args):
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args)


def subject_bootstrap(kind: str, folds: list[FoldResult], n: int, seed: int, level: float = 0.95) -> dict:
    """Percentile intervals of each metric (each metric difference, for a pair ``[a, b]`` of
    folds of the same examples) over ``n`` resamples of the subjects."""
    pair = len(folds) == 2
    uniq, members = _members(folds[0].groups)
    rng = np.random.default_rng(seed)
    draws: dict = {}
    for _ in range(n):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        values = [_quiet(task_metrics, kind, *subset(kind, f, rows)) for f in folds]
        for m in values[0]:
            draws.setdefault(m, []).append(values[0][m] - values[1][m] if pair else values[0][m])
    q = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined in every resample: NaN
        return {m: (float(np.nanquantile(v, q)), float(np.nanquantile(v, 1 - q))) for m, v in draws.items()}


def corrected_t(values: np.ndarray, n_test: float, n_train: float, level: float = 0.95) -> tuple[float, float]:
    """Nadeau & Bengio's corrected resampled t interval of the mean of ``values`` (one per split)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return NAN2
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) * np.sqrt(1 / len(v) + n_test / n_train)
    return float(v.mean() - half), float(v.mean() + half)


def spread(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` of ``values`` (the splits' metrics): where one split's figure falls."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return NAN2
    q = 100 * (1 - level) / 2
    return float(np.percentile(v, q)), float(np.percentile(v, 100 - q))


def subject_t(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of per-subject values."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return NAN2
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


REPEATED_INTERVALS = {"corrected_t": "corrected resampled t over {k} splits (Nadeau & Bengio)",
                      "spread": "the central 95% of the {k} splits' figures",
                      "bootstrap": "bootstrap over the {n} subjects, each split's test part resampled"}


def split_bootstrap(kind: str, folds: list[list[FoldResult]], n: int, seed: int, level: float = 0.95,
                    measure=None) -> dict:
    """Percentile intervals of the mean over splits of each metric (or metric difference, for a
    pair), over ``n`` resamples of all the subjects, each split's test part taking its resampled
    subjects' examples."""
    measure = measure or task_metrics
    pair = len(folds) == 2
    subjects = np.unique(np.concatenate([f.groups for f in folds[0]]))
    index = [np.searchsorted(subjects, f.groups) for f in folds[0]]
    rng = np.random.default_rng(seed)
    draws: dict = {}
    for _ in range(n):
        counts = np.bincount(rng.integers(0, len(subjects), len(subjects)), minlength=len(subjects))
        per: dict = {}
        for k, idx in enumerate(index):
            rows = np.repeat(np.arange(len(idx)), counts[idx])
            if not len(rows):
                continue
            vals = [_quiet(measure, kind, *subset(kind, f[k], rows)) for f in folds]
            for m in vals[0]:
                per.setdefault(m, []).append(vals[0][m] - vals[1][m] if pair else vals[0][m])
        for m, v in per.items():
            v = np.asarray(v)
            draws.setdefault(m, []).append(float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else np.nan)
    q = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {m: (float(np.nanquantile(v, q)), float(np.nanquantile(v, 1 - q))) for m, v in draws.items()}
LOSO_INTERVALS = {"bootstrap": "bootstrap over {n} subjects",
                  "t": "errors: Student's t over {n} subjects' errors; r: bootstrap over the subjects"}
PER_SUBJECT = ("mae", "rmse")  # leave-one-subject-out: averaged over subjects; the rest pooled


@dataclass
class Summary:
    """A task's metrics over an evaluation: ``values`` and ``intervals`` per metric, each fold's
    metrics, the number of test subjects, and ``interval`` (what the intervals are, in words, or
    why there are none)."""

    values: dict
    intervals: dict
    per_fold: list
    subjects: int
    interval: str


def summarise(kind: str, evaluation: str, folds: list[list[FoldResult]], *, rounds: int, seed: int,
              protocol: str = "grouped", level: float = 0.95, repeated: str = "corrected_t",
              loso: str = "t") -> Summary:
    """The metrics of one encoder (``folds`` = ``[folds]``), or the differences of two
    (``[folds_a, folds_b]``, on the same folds), by the evaluation's rule (see the module's text).
    Under the release's protocol its metrics' definitions (:func:`~reports.probe_models.release_metrics`).
    ``repeated`` and ``loso`` name the interval of those evaluations (:data:`REPEATED_INTERVALS`,
    :data:`LOSO_INTERVALS`)."""
    from .probe_models import release_metrics
    pair = len(folds) == 2
    measure = release_metrics if protocol == "anyppg" else task_metrics

    def metrics(fs):
        vals = [_quiet(measure, kind, f.y, f.pred) for f in fs]
        return {m: vals[0][m] - vals[1][m] if pair else vals[0][m] for m in vals[0]}

    per_fold = [metrics([f[k] for f in folds]) for k in range(len(folds[0]))]
    if evaluation == "repeated":
        values = {m: float(np.nanmean([p[m] for p in per_fold])) if any(np.isfinite(p[m]) for p in per_fold)
                  else float("nan") for m in per_fold[0]}
        n_test = float(np.mean([len(np.unique(f.groups)) for f in folds[0]]))
        n_subjects = len(np.unique(np.concatenate([f.groups for f in folds[0]])))
        if repeated == "spread":
            intervals = {m: spread([p[m] for p in per_fold], level) for m in values}
        elif repeated == "bootstrap":
            ci = split_bootstrap(kind, folds, rounds, seed, level, measure)
            intervals = {m: ci.get(m, NAN2) for m in values}
        else:
            intervals = {m: corrected_t([p[m] for p in per_fold], n_test, max(n_subjects - n_test, 1.0), level)
                         for m in values}
        return Summary(values, intervals, per_fold, n_subjects,
                       REPEATED_INTERVALS[repeated].format(k=len(per_fold), n=n_subjects))
    whole = [pooled(kind, f) for f in folds] if evaluation == "loso" else [f[0] for f in folds]
    values = metrics(whole)
    subjects = len(np.unique(whole[0].groups))
    if evaluation == "loso" and kind == "regression":  # errors: the mean over subjects
        for m in PER_SUBJECT:
            values[m] = float(np.mean([p[m] for p in per_fold]))
    if protocol == "anyppg" and evaluation == "split" and not pair:
        from .probe_models import release_bootstrap
        ci = release_bootstrap(kind, whole[0].y, whole[0].pred, rounds, seed, level)[0] if rounds else {}
        return Summary(values, {m: ci.get(m, NAN2) for m in values}, per_fold, subjects,
                       f"bootstrap over {len(whole[0].y)} test rows (the release's)")
    if rounds == 0:
        return Summary(values, dict.fromkeys(values, NAN2), per_fold, subjects, "no bootstrap asked")
    if subjects < MIN_BOOTSTRAP_SUBJECTS:
        return Summary(values, dict.fromkeys(values, NAN2), per_fold, subjects,
                       f"not available: {subjects} test subjects (a bootstrap needs {MIN_BOOTSTRAP_SUBJECTS})")
    ci = subject_bootstrap(kind, whole, rounds, seed, level)
    if evaluation == "loso" and kind == "regression":
        for m in PER_SUBJECT:
            per = [p[m] for p in per_fold]
            ci[m] = subject_t(per, level) if loso == "t" else _bootstrap_mean(per, rounds, seed, level)
        return Summary(values, ci, per_fold, subjects, LOSO_INTERVALS[loso].format(n=subjects))
    return Summary(values, ci, per_fold, subjects, f"bootstrap over {subjects} test subjects")


def _bootstrap_mean(values, rounds: int, seed: int, level: float) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    means = v[np.random.default_rng(seed).integers(0, len(v), (rounds, len(v)))].mean(1)
    q = (1 - level) / 2
    return float(np.quantile(means, q)), float(np.quantile(means, 1 - q))
