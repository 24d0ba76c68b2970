"""``phewas probe``: probes of frozen PPG encoders on labelled PPG datasets (the AnyPPG paper's
first stage), several encoders side by side.

Per example, the mean embedding of its windows (an example of 30 s has three; the pulse
features take the median); per task a probe chosen on the training part only, by the paper's
protocol (:mod:`reports.probe_models`): L2 logistic regression for binary tasks (AUC, macro-F1,
balanced accuracy), a random forest for multi-class ones (AUC one-vs-rest macro, macro-F1,
balanced accuracy), ridge regression for continuous ones (MAE, RMSE, Pearson r); the chosen
hyperparameters are recorded per task. Inner folds by subject where subjects are known. Split:
the dataset's official one where ``labels.csv`` has ``split``; otherwise 8:2 by subject, or by
example when subjects are unknown, seeded. Each metric has a 95% percentile-bootstrap interval
over test subjects (examples when unknown). Beside the encoders, a constant reference: the
training mean (regression) or the training prevalence (classes).

Preprocessed windows and embeddings are cached (``DATASET/cache`` unless ``--cache`` says
otherwise; :mod:`cohorts.probe_data`, :mod:`encoder.embed`), so a second probe of the same dataset
embeds only the encoders it has not seen.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.stats import rankdata

from cohorts.probe_data import INPUTS, WindowRule, load_probe_dataset
from cohorts.profiles import DEFAULT_PROFILE, PROFILES
from phewas.base.errors import InputError, PhewasError
from phewas.base.io import atomic_dir, write_json, write_manifest
from phewas.base.progress import progress
from phewas.base.settings import check_settings, setting

from . import figures
from .compare import model_names
from .html import write_page
from .probe_models import MULTICLASS, RELEASE_BOOTSTRAP, fit_probe, release_bootstrap, release_fit, release_metrics

METRICS = {"regression": ("mae", "rmse", "pearson_r"), "binary": ("auc", "macro_f1", "balanced_accuracy"),
           "multiclass": ("auc", "macro_f1", "balanced_accuracy")}
REFERENCE = "constant"  # the reference row: the training mean, or the training prevalence
PROTOCOLS = ("grouped", "anyppg")
PAPER = ("anyppg", "same", "none")
GROUPED_BOOTSTRAP = 1000
CHUNK = 65536  # windows per chunk when examples' embeddings are pooled


@dataclass
class ProbeConfig:
    """Settings of ``probe``: each field is a flag of the same name, and a key of ``run-all``'s
    ``[probe]`` table."""

    task: str | None = setting(None, "probe this task only (default: every task of dataset.toml)")
    seed: int = setting(0, "seed of the split, the folds, the bootstrap and the random encoder")
    test_fraction: float = setting(0.2, "share of subjects (or examples) held out when there is no official split")
    folds: int = setting(5, "cross-validation folds that choose the hyperparameters on the training part")
    bootstrap: int | None = setting(None, "bootstrap resamples for the intervals (default: 1000 of the test "
                                    "subjects under --protocol grouped, 500 of the test rows under anyppg)")
    preprocess: str = setting(DEFAULT_PROFILE, "preprocessing profile: anyppg (the AnyPPG release's, window by "
                              "window) or robust (as extract-segments --preprocess robust)", choices=PROFILES)
    input: str = setting("windows", "windows: 10-s windows of each example, embeddings averaged; anyppg: each "
                         "example Fourier-resampled to 1,250 samples whatever its duration (the release's)",
                         choices=INPUTS)
    protocol: str = setting("grouped", "grouped: inner folds and bootstrap by subject; anyppg: the release's "
                            "linear_prob.py exactly (scaler, folds over rows, its grids, random_state=42, "
                            "bootstrap over rows)", choices=PROTOCOLS)
    paper: str = setting("anyppg", "paper_table.csv by anyppg (the release's input, protocol and single split), "
                         "same (this run's settings) or none", choices=PAPER)
    max_invalid: float = setting(0.25, "reject windows with a larger share of invalid samples (robust profile, "
                                 "as extract-segments)")
    min_seconds: float = setting(5.0, "shortest example kept (shorter than 10 s: zero-padded)")
    multiclass: str = setting("forest", "multi-class probe: forest (the paper's random forest) or logistic",
                              choices=MULTICLASS)
    reference: bool = setting(True, "leave out the constant reference (training mean or prevalence)",
                              flag="--no-reference")
    cache: str | None = setting(None, "folder of preprocessed windows and embeddings (default: the dataset's "
                                "cache/, or a temporary one where that cannot be written)")
    batch_size: int = setting(256, "windows per forward pass")
    device: str = setting("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
    workers: int | None = setting(None, "processes for preprocessing, pulse features and forests (default: all "
                                  "cores)")

    def __post_init__(self):
        check_settings(
            self,
            (0 < self.test_fraction < 1, "test_fraction", "between 0 and 1"),
            (self.folds >= 2, "folds", "at least 2"),
            (self.bootstrap is None or self.bootstrap >= 0, "bootstrap", "0 or more"),
            (self.preprocess in PROFILES, "preprocess", f"one of {PROFILES}"),
            (self.input in INPUTS, "input", f"one of {INPUTS}"),
            (self.protocol in PROTOCOLS, "protocol", f"one of {PROTOCOLS}"),
            (self.paper in PAPER, "paper", f"one of {PAPER}"),
            (0 <= self.max_invalid <= 1, "max_invalid", "between 0 and 1"),
            (0 < self.min_seconds <= 10, "min_seconds", "between 0 and 10"),
            (self.multiclass in MULTICLASS, "multiclass", f"one of {MULTICLASS}"),
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.workers is None or self.workers >= 1, "workers", "at least 1"),
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


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney with mid-ranks for ties), as ``roc_auc_score``."""
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def task_metrics(kind: str, y, pred) -> dict:
    """The task's metrics for one set of test examples, computed from counts and ranks (equal to
    scikit-learn's ``roc_auc_score``, ``f1_score(average="macro")`` and
    ``balanced_accuracy_score``, checked in ``tests/test_probe.py``; a thousand bootstrap
    resamples need them fast)."""
    if kind == "regression":
        err = pred - y
        r = float(np.corrcoef(pred, y)[0, 1]) if np.std(pred) > 0 and np.std(y) > 0 else float("nan")
        return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2))), "pearson_r": r}
    proba, classes = pred
    predicted = classes[np.argmax(proba, axis=1)]
    present = np.unique(y)
    if len(present) < 2:
        auc = float("nan")
    elif len(classes) == 2:
        auc = _auc(y == classes[1], proba[:, 1])
    else:  # one-vs-rest, macro, over the classes the test part holds (renormalised)
        keep = np.isin(classes, present)
        p = proba[:, keep] / proba[:, keep].sum(1, keepdims=True)
        auc = (float(np.mean([_auc(y == c, p[:, j]) for j, c in enumerate(classes[keep])])) if keep.sum() > 2
               else _auc(y == classes[keep][1], p[:, 1]))
    labels, codes = np.unique(np.concatenate([y, predicted]), return_inverse=True)
    truth, guess = codes[:len(y)], codes[len(y):]
    k = len(labels)
    tp = np.bincount(truth[truth == guess], minlength=k).astype(np.float64)
    n_true, n_guess = np.bincount(truth, minlength=k), np.bincount(guess, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(n_true + n_guess > 0, 2 * tp / (n_true + n_guess), 0.0)
        recall = tp[n_true > 0] / n_true[n_true > 0]
    return {"auc": auc, "macro_f1": float(f1.mean()), "balanced_accuracy": float(recall.mean())}


def bootstrap_intervals(kind, y, pred, groups, n: int, seed: int, level: float = 0.95) -> dict:
    """Percentile intervals of each metric over resamples of the test groups (subjects)."""
    if n == 0:
        return {m: (float("nan"), float("nan")) for m in METRICS[kind]}
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(groups, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(inv, minlength=len(uniq)))[:-1])
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


def _encoder_name(spec: str) -> str:
    """An encoder's default name (:attr:`encoder.specs.EncoderSpec.name`)."""
    from encoder.specs import parse_spec  # torch-free

    try:
        return parse_spec(spec).name
    except ValueError as err:
        raise PhewasError(str(err)) from None


def _encoder_names(encoders: list[str], names: list[str] | None) -> list[str]:
    if names is None:
        names = [_encoder_name(e) for e in encoders]
    return model_names([Path(e) for e in encoders], names)


def load_encoders(encoders: list[str], seed: int) -> list[tuple]:
    """``(model, description)`` per encoder named: ``random`` takes the architecture of the first
    trained encoder given (AnyPPG's without one)."""
    from encoder.embed import RANDOM, load_encoder  # torch: only when probing a network
    arch, loaded = None, []
    for e in encoders:
        if e != RANDOM:
            model, desc = load_encoder(e)
            arch = arch or desc.get("architecture") or None
            loaded.append((model, desc))
        else:
            loaded.append(None)
    return [x if x is not None else load_encoder(RANDOM, architecture=arch, seed=seed) for x in loaded]


def example_embeddings(emb: np.ndarray, example_of: np.ndarray, n: int, aggregate: str) -> np.ndarray:
    """float32 ``[n, d]``: each example's windows pooled (``mean``, or ``median`` ignoring NaN), read
    in chunks of the (memory-mapped) window embeddings, which are grouped by example."""
    starts = np.r_[0, np.flatnonzero(np.diff(example_of)) + 1]
    ends = np.r_[starts[1:], len(example_of)]
    out = np.zeros((n, emb.shape[1]), np.float32)
    i = 0
    while i < n:
        j = int(np.searchsorted(starts, starts[i] + CHUNK, side="left"))
        j = max(j, i + 1)
        block = np.asarray(emb[starts[i]:ends[j - 1]], np.float64)
        first, counts = starts[i:j] - starts[i], ends[i:j] - starts[i:j]
        if aggregate == "mean":
            out[i:j] = np.add.reduceat(block, first, axis=0) / counts[:, None]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # no beat in any window: NaN, imputed later
                for c in np.unique(counts):
                    sel = np.flatnonzero(counts == c)
                    out[i + sel] = np.nanmedian(block[first[sel][:, None] + np.arange(c)], axis=1)
        i = j
    return out


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


@dataclass(frozen=True)
class Settings:
    """One way of probing (see :func:`probe`): the window rule, the protocol, the bootstrap's
    size, and the name of the pass (``main``, or ``paper`` for ``paper_table.csv``)."""

    rule: WindowRule
    protocol: str
    bootstrap: int
    name: str = "main"

    def describe(self) -> dict:
        return {"preprocess": self.rule.preprocess, "input": self.rule.input, "protocol": self.protocol,
                "bootstrap": self.bootstrap}


def probe_task(name: str, task: str, kind: str, X: np.ndarray, labels: pl.DataFrame, test: np.ndarray,
               groups: np.ndarray, cfg: ProbeConfig, workers: int, settings: Settings | None = None) -> list[dict]:
    """One encoder's rows of ``probe.csv`` for one task: a metric each, or a note why none; with
    ``X`` None, the constant reference's. ``settings`` choose the protocol (default: ``cfg``'s)."""
    protocol = settings.protocol if settings else cfg.protocol
    rounds = settings.bootstrap if settings else _bootstrap_rounds(cfg)
    col = labels[task]
    have = col.is_not_null().to_numpy()
    y = col.to_numpy()
    if kind != "regression":
        y = y.astype(str)
    tr, te = have & ~test, have & test
    base = {"encoder": name, "task": task, "kind": kind, "n_train": int(tr.sum()), "n_test": int(te.sum())}
    empty = {"metric": None, "value": None, "ci_low": None, "ci_high": None, "penalty": None, "hyperparameters": None}
    if tr.sum() < 2 * cfg.folds or te.sum() < 2 or (kind != "regression" and len(np.unique(y[tr])) < 2):
        return [base | empty | {"note": "too few labelled examples"}]
    y_tr = y[tr].astype(np.float64) if kind == "regression" else y[tr]
    y_te = y[te].astype(np.float64) if kind == "regression" else y[te]
    note = []
    if X is None:  # the constant reference
        if kind == "regression":
            pred, hyper = np.full(te.sum(), y_tr.mean()), {"constant": float(y_tr.mean())}
        else:
            classes, counts = np.unique(y_tr, return_counts=True)
            if protocol == "anyppg":
                from .probe_models import release_labels
                classes = release_labels(y_tr)[1]
                counts = np.array([(y_tr == c).sum() for c in classes])
            pred, hyper = (np.tile(counts / counts.sum(), (te.sum(), 1)), classes), {"constant": "prevalence"}
    else:
        X_tr, X_te, imputed = impute(X[tr], X[te])
        if imputed:
            note.append(f"{imputed} examples without a measured feature, imputed with the training median")
        if protocol == "anyppg":
            fit = release_fit(X_tr, y_tr, X_te, kind, workers=workers)
        else:
            fit = fit_probe(X_tr, y_tr, X_te, kind, groups=groups[tr], folds=cfg.folds, seed=cfg.seed,
                            multiclass=cfg.multiclass, workers=workers)
        pred, hyper = fit.prediction, fit.hyperparameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes a probe predicts that the test lacks
        values = release_metrics(kind, y_te, pred) if protocol == "anyppg" else task_metrics(kind, y_te, pred)
    if protocol == "anyppg":
        ci = release_bootstrap(kind, y_te, pred, rounds, cfg.seed)[0] if rounds else \
            {m: (float("nan"), float("nan")) for m in METRICS[kind]}
    else:
        ci = bootstrap_intervals(kind, y_te, pred, groups[te], rounds, cfg.seed)
    if kind != "regression" and len(np.unique(y_te)) < 2:
        note.append("the test part holds one class: no AUC")
    penalty = hyper.get("C", hyper.get("alpha"))
    hyper_text = json.dumps(hyper, default=_plain)
    return [base | {"metric": m, "value": v, "ci_low": ci.get(m, (None, None))[0],
                    "ci_high": ci.get(m, (None, None))[1], "penalty": penalty, "hyperparameters": hyper_text,
                    "note": "; ".join(note) or None}
            for m, v in values.items()]


def _plain(value):
    """JSON for numpy scalars in hyperparameters."""
    return value.item() if hasattr(value, "item") else str(value)


def _bootstrap_rounds(cfg: ProbeConfig, protocol: str | None = None) -> int:
    if cfg.bootstrap is not None:
        return cfg.bootstrap
    return RELEASE_BOOTSTRAP if (protocol or cfg.protocol) == "anyppg" else GROUPED_BOOTSTRAP


TABLE_SCHEMA = {"encoder": pl.String, "task": pl.String, "kind": pl.String, "metric": pl.String, "value": pl.Float64,
                "ci_low": pl.Float64, "ci_high": pl.Float64, "n_train": pl.Int64, "n_test": pl.Int64,
                "penalty": pl.Float64, "hyperparameters": pl.String, "note": pl.String}


def _cache_folder(dataset: Path, cfg: ProbeConfig):
    """The cache folder, and a context that removes it at the end when it is a temporary one."""
    if cfg.cache is not None:
        return Path(cfg.cache), nullcontext()
    own = Path(dataset) / "cache"
    if os.access(own if own.exists() else Path(dataset), os.W_OK):
        return own, nullcontext()
    tmp = tempfile.TemporaryDirectory(prefix="phewas-probe-cache-")
    return Path(tmp.name), tmp


def probe_settings(cfg: ProbeConfig) -> list[Settings]:
    """The passes a probe runs: its own settings (``main``), and the release's for
    ``paper_table.csv`` (``paper``) when ``cfg.paper`` asks for them and they differ."""
    main = Settings(WindowRule(cfg.preprocess, cfg.input, cfg.max_invalid, cfg.min_seconds), cfg.protocol,
                    _bootstrap_rounds(cfg))
    if cfg.paper != "anyppg":
        return [main]
    paper = Settings(WindowRule("anyppg", "anyppg", cfg.max_invalid, cfg.min_seconds), "anyppg",
                     _bootstrap_rounds(cfg, "anyppg"), "paper")
    return [main] if (paper.rule, paper.protocol) == (main.rule, main.protocol) else [main, paper]


def probe(dataset, encoders: list[str], out, names: list[str] | None = None, config: ProbeConfig | None = None,
          overwrite: bool = False) -> dict:
    """``phewas probe``: probe each encoder on each task of ``dataset``; write ``probe.csv``,
    figures and the HTML page. Returns ``summary.json``'s content.

    ``probe.csv`` holds the run's own settings (:class:`ProbeConfig`); ``paper_table.csv`` the
    paper's layout, by the release's input and protocol unless ``paper`` says otherwise (a second
    pass over the same encoders, recorded in ``summary.json``)."""
    cfg = config or ProbeConfig()
    if not encoders:
        raise PhewasError("probe needs at least one --encoder")
    names = _encoder_names(encoders, names)
    workers = cfg.workers or os.cpu_count() or 1
    cache, cleanup = _cache_folder(Path(dataset), cfg)
    passes = probe_settings(cfg)
    with cleanup:
        models = load_encoders(encoders, cfg.seed)
        results = {s.name: _probe_pass(dataset, names, models, cfg, s, cache, workers) for s in passes}
    main = results["main"]
    paper = results.get("paper", main)
    all_names = [*names, REFERENCE] if cfg.reference else names
    summary = {**main["summary"], "settings": passes[0].describe(),
               "paper_table": {**passes[-1].describe(), "split": paper["summary"]["split"]}
               if cfg.paper != "none" else None}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_probe(tmp, main["table"], summary, all_names, main["summary"]["tasks"], main["summary"]["split"],
                    paper=paper["table"] if cfg.paper != "none" else None)
        write_manifest(tmp, command="probe", inputs={"dataset": str(Path(dataset).resolve()),
                                                     "encoders": {n: main["summary"]["encoders"][n] for n in names}},
                       parameters=asdict(cfg), counts={"examples": summary["examples"], "windows": summary["windows"]})
    return summary | {"table": main["table"].to_dicts()}


def _probe_pass(dataset, names: list[str], models: list[tuple], cfg: ProbeConfig, settings: Settings, cache: Path,
                workers: int) -> dict:
    """Every encoder on every task by one :class:`Settings`: ``{"table", "summary"}``."""
    from encoder.embed import cached_embeddings

    data = load_probe_dataset(dataset, rule=settings.rule, cache=cache, workers=workers)
    tasks = data.tasks if cfg.task is None else {cfg.task: data.tasks.get(cfg.task)}
    if None in tasks.values():
        raise InputError(Path(dataset) / "dataset.toml", f"no task {cfg.task!r}; tasks: {', '.join(data.tasks)}")
    test, how = split_examples(data.labels, cfg.test_fraction, cfg.seed,
                               [t for t, k in tasks.items() if k != "regression"])
    subject = data.labels["subject"].to_numpy()
    groups = subject if data.labels["subject"].is_not_null().all() else np.arange(data.labels.height).astype(str)
    rows, per_encoder = [], {}
    label = "" if settings.name == "main" else f" ({settings.name})"
    for name, (model, desc) in zip(names, models):
        emb = cached_embeddings(model, f"{desc['key']}-{data.key}", data.windows, cache,
                                batch=cfg.batch_size, device=cfg.device, workers=workers)
        X = example_embeddings(emb, data.example_of, data.labels.height, desc["aggregate"])
        per_encoder[name] = {k: v for k, v in desc.items() if k != "architecture"} | {"dim": int(emb.shape[1])}
        for task, kind in progress(tasks.items(), desc=f"probe {name}{label}", unit="task"):
            rows += probe_task(name, task, kind, X, data.labels, test, groups, cfg, workers, settings)
        del X, emb
    if cfg.reference:
        for task, kind in tasks.items():
            rows += probe_task(REFERENCE, task, kind, None, data.labels, test, groups, cfg, workers, settings)
    table = pl.DataFrame(rows, schema=TABLE_SCHEMA)
    rule = settings.rule
    summary = {"dataset": data.name, "examples": data.labels.height, "windows": int(len(data.windows)),
               "rejected_examples": data.rejected, "split": how, "test_examples": int(test.sum()),
               "tasks": tasks, "encoders": per_encoder,
               "hyperparameters": {f"{r['encoder']}/{r['task']}": json.loads(r["hyperparameters"])
                                   for r in rows if r["hyperparameters"] and r["metric"] in ("mae", "auc")},
               "window_rule": (f"preprocessing profile {rule.preprocess}; " + (
                   "10-s windows of each example, embeddings averaged; shorter examples (>= min_seconds) "
                   "zero-padded" if rule.input == "windows" else
                   "each example as one window Fourier-resampled to 1,250 samples (the release's)")),
               "protocol": PROTOCOL_TEXT[settings.protocol] | (
                   {"multiclass": f"{cfg.multiclass}, by inner-fold accuracy"} if settings.protocol == "grouped"
                   else {})}
    return {"table": table, "summary": summary}


PROTOCOL_TEXT = {
    "grouped": {"binary": "L2 logistic regression on standardised embeddings, C by the AUC of inner folds by "
                "subject", "regression": "ridge, alpha by the mean absolute error of inner folds by subject",
                "intervals": "percentile bootstrap over test subjects"},
    "anyppg": {"binary": "StandardScaler + L2 logistic regression (lbfgs), C by GridSearchCV(cv=5, roc_auc) over "
               "rows", "regression": "StandardScaler + ridge, alpha by GridSearchCV(cv=5, MAE) over rows",
               "multiclass": "StandardScaler + random forest (random_state=42) by GridSearchCV(cv=5, accuracy)",
               "intervals": "percentile bootstrap over test rows, 500 rounds (the release's linear_prob.py)"},
}


def write_probe(out: Path, table: pl.DataFrame, summary: dict, names: list[str], tasks: dict, how: str,
                paper: pl.DataFrame | None = None) -> None:
    """``probe.csv``, ``summary.json``, ``paper_table.csv`` (:func:`paper_table` of ``paper``, the
    rows of the paper's settings; none when None), a figure per task, the tasks-by-encoder figure
    and ``index.html`` into ``out``."""
    table.write_csv(out / "probe.csv")
    if paper is not None:
        paper_table(paper, names).write_csv(out / "paper_table.csv")
    write_json(out / "summary.json", summary)
    figs = {f"{t}": figures.probe_metric(table, t, out)[0] for t in tasks
            if table.filter((pl.col("task") == t) & pl.col("value").is_not_null()).height}
    heads = [("examples", summary["examples"]), ("test examples", summary["test_examples"]),
             ("encoders", len(names)), ("tasks", len(tasks))]
    st = summary["settings"]
    intervals = "test subjects" if st["protocol"] == "grouped" else "test rows (the release's)"
    intro = (f"Dataset <code>{summary['dataset']}</code>; split {how}. Frozen encoders; preprocessing "
             f"<code>{st['preprocess']}</code>, input <code>{st['input']}</code>, protocol "
             f"<code>{st['protocol']}</code> (L2 logistic regression, random forest, ridge; hyperparameters chosen "
             f"on the training part by inner folds); 95% bootstrap intervals over {intervals}; "
             "<code>constant</code> predicts the training mean or prevalence.")
    own = paper_table(table, names)
    if own.height:
        figs["Tasks by encoder"] = figures.probe_comparison(table, names, out)[0]
    extra = ("<h2>Tasks by encoder</h2><p>Each task's main metric (AUC for classification, mean absolute "
             "error for regression) with its 95% interval, by this run's settings; the best per task in bold.</p>"
             + paper_html(own))
    released = summary.get("paper_table")
    if paper is not None and released and {k: released[k] for k in st} != st:
        extra += (f"<h2>The paper's table</h2><p>The same encoders by the release's settings (input "
                  f"<code>{released['input']}</code>, protocol <code>{released['protocol']}</code>, split "
                  f"{released['split']}), as <code>paper_table.csv</code> holds them.</p>"
                  + paper_html(paper_table(paper, names)))
    from .explorer import table_columns
    explorer = {"kind": "probe", "main_metrics": [m for m in ("auc", "mae", "pearson_r")
                                                   if m in set(table["metric"].to_list())],
                "encoders": list(names),
                "columns": table_columns(table, ["task", "kind", "encoder", "metric", "value", "ci_low", "ci_high",
                                                 "n_test", "hyperparameters"])}
    write_page(out, title="phewas probe", heading="What do the encoders' embeddings know?", intro=intro,
               heads=heads, figures=figs, table=table.drop("note", "hyperparameters"),
               table_title="Tasks, metrics, encoders", explorer=explorer, extra=extra)


MAIN_METRIC = {"binary": "auc", "multiclass": "auc", "regression": "mae"}
HIGHER_IS_BETTER = {"auc": True, "mae": False}


def paper_table(table: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """The AnyPPG paper's layout: one row per task, one column per encoder holding the task's main
    metric (:data:`MAIN_METRIC`) as ``value [low, high]``, and ``best``, the encoder with the best
    value (highest AUC, lowest error; tied encoders joined by " = ")."""
    rows = []
    for task in dict.fromkeys(table["task"].to_list()):
        sub = table.filter(pl.col("task") == task)
        metric = MAIN_METRIC.get(sub["kind"][0])
        cells = {r["encoder"]: r for r in sub.filter(pl.col("metric") == metric).iter_rows(named=True)
                 if r["value"] is not None}
        if not cells:
            continue
        pick = max if HIGHER_IS_BETTER[metric] else min
        top = pick(r["value"] for r in cells.values())
        best = " = ".join(e for e in names if e in cells and cells[e]["value"] == top)  # ties share it
        row = {"task": task, "metric": metric, "best": best}
        for name in names:
            r = cells.get(name)
            row[name] = None if r is None else (f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                                                if r["ci_low"] is not None else f"{r['value']:.3f}")
        rows.append(row)
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def paper_html(paper: pl.DataFrame) -> str:
    """:func:`paper_table` as an HTML table, the best per row in bold."""
    import html as html_

    if not paper.height:
        return ""
    encoders = [c for c in paper.columns if c not in ("task", "metric", "best")]
    head = "".join(f"<th>{html_.escape(e)}</th>" for e in ["task", "metric", *encoders])
    body = ""
    for r in paper.iter_rows(named=True):
        best = r["best"].split(" = ")
        cells = "".join(f"<td>{'<b>' if e in best else ''}{html_.escape(r[e] or '')}"
                        f"{'</b>' if e in best else ''}</td>" for e in encoders)
        body += f"<tr><td>{html_.escape(r['task'])}</td><td>{r['metric']}</td>{cells}</tr>"
    return f'<table class="paper"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

