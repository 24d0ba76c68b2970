"""``phewas probe``: linear probes of frozen PPG encoders on labelled PPG datasets (the AnyPPG
paper's first stage), several encoders side by side.

Per example, the mean embedding of its windows (an example of 30 s has three); per task a linear
probe on the standardised embeddings: ridge regression for continuous targets (MAE, RMSE,
Pearson r), L2 logistic regression for binary and multi-class ones (AUC, one-vs-rest macro for
several classes; macro-F1; balanced accuracy). The penalty is chosen by 5-fold cross-validation
on the training part only (folds by subject where subjects are known). Split: the dataset's
official one where ``labels.csv`` has ``split``; otherwise 8:2 by subject, or by example when
subjects are unknown, seeded. Each metric has a 95% percentile-bootstrap interval over test
subjects (examples when unknown).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from cohorts.probe_data import load_probe_dataset
from phewas.base.errors import InputError, PhewasError
from phewas.base.io import atomic_dir, write_json, write_manifest
from phewas.base.progress import progress
from phewas.base.settings import check_settings, setting

from . import figures
from .compare import model_names
from .html import write_page

METRICS = {"regression": ("mae", "rmse", "pearson_r"), "binary": ("auc", "macro_f1", "balanced_accuracy"),
           "multiclass": ("auc", "macro_f1", "balanced_accuracy")}
ALPHAS = np.logspace(-3, 4, 15)  # ridge penalties tried
CS = np.logspace(-4, 2, 13)  # inverse logistic penalties tried


@dataclass
class ProbeConfig:
    """Settings of ``probe``: each field is a flag of the same name, and a key of ``run-all``'s
    ``[probe]`` table."""

    task: str | None = setting(None, "probe this task only (default: every task of dataset.toml)")
    seed: int = setting(0, "seed of the split, the folds, the bootstrap and the random encoder")
    test_fraction: float = setting(0.2, "share of subjects (or examples) held out when there is no official split")
    folds: int = setting(5, "cross-validation folds that choose the penalty on the training part")
    bootstrap: int = setting(1000, "bootstrap resamples of the test subjects for the intervals")
    max_invalid: float = setting(0.25, "reject windows with a larger share of invalid samples (as extract-segments)")
    min_seconds: float = setting(5.0, "shortest example kept (shorter than 10 s: zero-padded)")
    batch_size: int = setting(256, "windows per forward pass")
    device: str = setting("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))

    def __post_init__(self):
        check_settings(
            self,
            (0 < self.test_fraction < 1, "test_fraction", "between 0 and 1"),
            (self.folds >= 2, "folds", "at least 2"),
            (self.bootstrap >= 0, "bootstrap", "0 or more"),
            (0 <= self.max_invalid <= 1, "max_invalid", "between 0 and 1"),
            (0 < self.min_seconds <= 10, "min_seconds", "between 0 and 10"),
            (self.batch_size >= 1, "batch_size", "at least 1"),
        )


DRAWS = 100  # seeded splits tried until every class task has two classes on each side


def split_examples(labels: pl.DataFrame, test_fraction: float, seed: int, class_tasks=()) -> tuple[np.ndarray, str]:
    """Boolean test mask over examples and how it was made. Without an official split, the
    first of :data:`DRAWS` seeded draws in which each of ``class_tasks`` (label columns) has at
    least two classes among the labelled training and test examples (else the first draw): a
    test part holding one class has no AUC."""
    if labels["split"].is_not_null().all():
        return (labels["split"] == "test").to_numpy(), "official"
    rng = np.random.default_rng(seed)
    by_subject = labels["subject"].is_not_null().all()
    units = np.unique(labels["subject"].to_numpy()) if by_subject else np.arange(labels.height)
    n_test = max(1, int(round(test_fraction * len(units))))

    def draw():
        chosen = rng.choice(units, n_test, replace=False)
        return (labels["subject"].is_in(list(chosen)).to_numpy() if by_subject
                else np.isin(np.arange(labels.height), chosen))

    def both_sides(mask):
        for t in class_tasks:
            col = labels[t]
            have = col.is_not_null().to_numpy()
            for side in (mask, ~mask):
                if col.filter(pl.Series(have & side)).n_unique() < 2:
                    return False
        return True
    first = draw()
    mask, k = first, 1
    while not both_sides(mask) and k < DRAWS:
        mask, k = draw(), k + 1
    if not both_sides(mask):
        mask, k = first, 0
    unit = "subject" if by_subject else "example"
    return mask, (f"by {unit} (8:2, seeded" + (f"; draw {k}: every class task has two classes on each side)"
                                                if k else ")"))


def _folds(groups, y, folds: int, classify: bool, seed: int):
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
    if groups is not None and len(np.unique(groups)) >= folds:
        return (StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if classify
                else GroupKFold(folds)).split(np.zeros(len(y)), y, groups)
    return (StratifiedKFold(folds, shuffle=True, random_state=seed) if classify
            else KFold(folds, shuffle=True, random_state=seed)).split(np.zeros(len(y)), y)


def fit_probe(X_train, y_train, X_test, kind: str, groups=None, folds: int = 5, seed: int = 0):
    """Standardise, choose the penalty by cross-validation on the training part, refit, predict.
    Returns ``(prediction, chosen penalty)``: values for regression, class probabilities
    ``[n, k]`` (with the classes) for classification."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import log_loss, mean_squared_error
    from sklearn.preprocessing import StandardScaler
    classify = kind != "regression"
    cv = list(_folds(groups, y_train, folds, classify, seed))
    grid = CS if classify else ALPHAS

    def model(v):
        return LogisticRegression(C=v, max_iter=3000) if classify else Ridge(alpha=v)
    losses = np.zeros(len(grid))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at extreme penalties
        for tr, va in cv:
            sc = StandardScaler().fit(X_train[tr])
            a, b = sc.transform(X_train[tr]), sc.transform(X_train[va])
            for i, v in enumerate(grid):
                m = model(v).fit(a, y_train[tr])
                if classify:
                    p = np.zeros((len(va), len(np.unique(y_train))))
                    classes = np.unique(y_train)
                    p[:, np.searchsorted(classes, m.classes_)] = m.predict_proba(b)
                    p = np.clip(p, 1e-12, 1)
                    losses[i] += log_loss(y_train[va], p / p.sum(1, keepdims=True), labels=classes)
                else:
                    losses[i] += mean_squared_error(y_train[va], m.predict(b))
        best = grid[int(np.argmin(losses))]
        sc = StandardScaler().fit(X_train)
        m = model(best).fit(sc.transform(X_train), y_train)
        pred = m.predict_proba(sc.transform(X_test)) if classify else m.predict(sc.transform(X_test))
    return (pred, m.classes_ if classify else None), float(best)


def task_metrics(kind: str, y, pred) -> dict:
    """The task's metrics for one set of test examples."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
    if kind == "regression":
        err = pred - y
        r = float(np.corrcoef(pred, y)[0, 1]) if np.std(pred) > 0 and np.std(y) > 0 else float("nan")
        return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2))), "pearson_r": r}
    proba, classes = pred
    labels = classes[np.argmax(proba, axis=1)]
    present = np.unique(y)
    if len(present) < 2:
        auc = float("nan")
    elif len(classes) == 2:
        auc = float(roc_auc_score(y, proba[:, 1]))
    else:
        keep = np.isin(classes, present)
        p = proba[:, keep] / proba[:, keep].sum(1, keepdims=True)
        auc = float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=classes[keep])) \
            if keep.sum() > 2 else float(roc_auc_score(y, p[:, 1]))
    return {"auc": auc, "macro_f1": float(f1_score(y, labels, average="macro")),
            "balanced_accuracy": float(balanced_accuracy_score(y, labels))}


def bootstrap_intervals(kind, y, pred, groups, n: int, seed: int, level: float = 0.95) -> dict:
    """Percentile intervals of each metric over resamples of the test groups (subjects)."""
    if n == 0:
        return {m: (float("nan"), float("nan")) for m in METRICS[kind]}
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    draws = {m: [] for m in METRICS[kind]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            rows = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
            sub = pred[rows] if kind == "regression" else (pred[0][rows], pred[1])
            for m, v in task_metrics(kind, y[rows], sub).items():
                draws[m].append(v)
    q = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric undefined in every resample stays NaN
        return {m: (float(np.nanquantile(v, q)), float(np.nanquantile(v, 1 - q))) for m, v in draws.items()}


def _encoder_names(encoders: list[str], names: list[str] | None) -> list[str]:
    if names is None:
        names = [e if e == "random" else (Path(e).stem if Path(e).is_file() else Path(e).resolve().name)
                 for e in encoders]
    return model_names([Path(e) for e in encoders], names)


def load_encoders(encoders: list[str], seed: int) -> tuple[list[tuple], str]:
    """``(model, description)`` per encoder named, and the random encoder's cache key: ``random``
    takes the architecture of the first trained encoder given (AnyPPG's without one)."""
    from encoder.embed import RANDOM, load_encoder  # torch: only when probing
    arch, loaded = None, []
    for e in encoders:
        if e != RANDOM:
            model, desc = load_encoder(e)
            arch = arch or desc.get("architecture") or None
            loaded.append((model, desc))
        else:
            loaded.append(None)
    random_key = f"random-{seed}-{hashlib.sha256(repr(arch).encode()).hexdigest()[:8]}"
    return [x if x is not None else load_encoder(RANDOM, architecture=arch, seed=seed) for x in loaded], random_key


def window_embeddings(model, windows: np.ndarray, key: str, cache: Path, batch: int, device: str) -> np.ndarray:
    """The windows' embeddings, read from ``cache`` (an ``.npz`` written by an earlier run) when its
    key (weights and windows) matches, else computed."""
    from encoder.embed import embed
    if cache.is_file():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                return z["embeddings"]
    return embed(model, windows, batch=batch, device=device)


def example_means(emb: np.ndarray, example_of: np.ndarray, n: int) -> np.ndarray:
    """The example's embedding: the mean over its windows."""
    X = np.zeros((n, emb.shape[1]))
    np.add.at(X, example_of, emb)
    return X / np.bincount(example_of, minlength=n)[:, None]


def probe_task(name: str, task: str, kind: str, X: np.ndarray, labels: pl.DataFrame, test: np.ndarray,
               groups: np.ndarray, cfg: ProbeConfig) -> list[dict]:
    """One encoder's rows of ``probe.csv`` for one task: a metric each, or a note why none."""
    col = labels[task]
    have = col.is_not_null().to_numpy()
    y = col.to_numpy()
    if kind != "regression":
        y = y.astype(str)
    tr, te = have & ~test, have & test
    base = {"encoder": name, "task": task, "kind": kind, "n_train": int(tr.sum()), "n_test": int(te.sum())}
    if tr.sum() < 2 * cfg.folds or te.sum() < 2 or (kind != "regression" and len(np.unique(y[tr])) < 2):
        return [base | {"metric": None, "value": None, "ci_low": None, "ci_high": None, "penalty": None,
                        "note": "too few labelled examples"}]
    y_tr = y[tr].astype(np.float64) if kind == "regression" else y[tr]
    y_te = y[te].astype(np.float64) if kind == "regression" else y[te]
    pred, penalty = fit_probe(X[tr], y_tr, X[te], kind, groups=groups[tr], folds=cfg.folds, seed=cfg.seed)
    pred = pred[0] if kind == "regression" else pred
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes a probe predicts that the test lacks
        values = task_metrics(kind, y_te, pred)
    ci = bootstrap_intervals(kind, y_te, pred, groups[te], cfg.bootstrap, cfg.seed)
    note = "the test part holds one class: no AUC" if kind != "regression" and len(np.unique(y_te)) < 2 else None
    return [base | {"metric": m, "value": v, "ci_low": ci[m][0], "ci_high": ci[m][1], "penalty": penalty,
                    "note": note} for m, v in values.items()]


TABLE_SCHEMA = {"encoder": pl.String, "task": pl.String, "kind": pl.String, "metric": pl.String, "value": pl.Float64,
                "ci_low": pl.Float64, "ci_high": pl.Float64, "n_train": pl.Int64, "n_test": pl.Int64,
                "penalty": pl.Float64, "note": pl.String}


def probe(dataset, encoders: list[str], out, names: list[str] | None = None, config: ProbeConfig | None = None,
          overwrite: bool = False) -> dict:
    """``phewas probe``: probe each encoder on each task of ``dataset``; write ``probe.csv``,
    figures, the HTML page and the embeddings (``embeddings/NAME.npz``, reused by a later run over
    the same windows and weights). Returns ``summary.json``'s content."""
    cfg = config or ProbeConfig()
    if not encoders:
        raise PhewasError("probe needs at least one --encoder")
    names = _encoder_names(encoders, names)
    data = load_probe_dataset(dataset, max_invalid=cfg.max_invalid, min_seconds=cfg.min_seconds)
    tasks = data.tasks if cfg.task is None else {cfg.task: data.tasks.get(cfg.task)}
    if None in tasks.values():
        raise InputError(Path(dataset) / "dataset.toml", f"no task {cfg.task!r}; tasks: {', '.join(data.tasks)}")
    test, how = split_examples(data.labels, cfg.test_fraction, cfg.seed,
                               [t for t, k in tasks.items() if k != "regression"])
    subject = data.labels["subject"].to_numpy()
    groups = subject if data.labels["subject"].is_not_null().all() else np.arange(data.labels.height).astype(str)
    windows_key = hashlib.sha256(np.ascontiguousarray(data.windows).tobytes()).hexdigest()[:16]
    loaded, random_key = load_encoders(encoders, cfg.seed)
    rows, per_encoder = [], {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "embeddings").mkdir()
        for name, (model, desc) in zip(names, loaded):
            key = f"{desc.get('sha256') or random_key}-{windows_key}"
            emb = window_embeddings(model, data.windows, key, Path(out) / "embeddings" / f"{name}.npz",
                                    cfg.batch_size, cfg.device)
            np.savez(tmp / "embeddings" / f"{name}.npz", embeddings=emb, key=np.array(key))
            X = example_means(emb, data.example_of, data.labels.height)
            per_encoder[name] = {k: v for k, v in desc.items() if k != "architecture"} | {"dim": int(emb.shape[1])}
            for task, kind in progress(tasks.items(), desc=f"probe {name}", unit="task"):
                rows += probe_task(name, task, kind, X, data.labels, test, groups, cfg)
        table = pl.DataFrame(rows, schema=TABLE_SCHEMA)
        summary = {"dataset": data.name, "examples": data.labels.height, "windows": int(len(data.windows)),
                   "rejected_examples": data.rejected, "split": how, "test_examples": int(test.sum()),
                   "tasks": tasks, "encoders": per_encoder,
                   "window_rule": "10 s at 125 Hz as extract-segments; longer examples: non-overlapping 10-s "
                                  "windows, embeddings averaged; shorter (>= min_seconds): zero-padded"}
        write_probe(tmp, table, summary, names, tasks, how)
        write_manifest(tmp, command="probe", inputs={"dataset": str(Path(dataset).resolve()),
                                                     "encoders": {n: per_encoder[n] for n in names}},
                       parameters=asdict(cfg), counts={"examples": data.labels.height, "windows": len(data.windows)})
    return summary | {"table": table.to_dicts()}


def write_probe(out: Path, table: pl.DataFrame, summary: dict, names: list[str], tasks: dict, how: str) -> None:
    """``probe.csv``, ``summary.json``, a figure per task and ``index.html`` into ``out``."""
    table.write_csv(out / "probe.csv")
    write_json(out / "summary.json", summary)
    figs = {f"{t}": figures.probe_metric(table, t, out)[0] for t in tasks
            if table.filter((pl.col("task") == t) & pl.col("value").is_not_null()).height}
    heads = [("examples", summary["examples"]), ("test examples", summary["test_examples"]),
             ("encoders", len(names)), ("tasks", len(tasks))]
    intro = (f"Dataset <code>{summary['dataset']}</code>; split {how}. Frozen encoders, linear probes (ridge; L2 "
             "logistic), penalty chosen by cross-validation on the training part; 95% bootstrap intervals "
             "over test subjects.")
    write_page(out, title="phewas probe", heading="What do the encoders' embeddings know?", intro=intro,
               heads=heads, figures=figs, table=table.drop("note"), table_title="Tasks, metrics, encoders")
