"""``phewas probe``: probes of frozen PPG encoders on labelled PPG datasets (the AnyPPG paper's
first stage), several encoders side by side.

Reads top to bottom: the settings (:class:`ProbeConfig`), the passes (this run's settings, and the
release's for ``paper_table.csv``), and per pass: the dataset's windows by the window rule
(:mod:`cohorts.probe_data`), each encoder's cached embeddings pooled per example, the evaluation's
folds (:mod:`reports.probe_split`), a probe fitted on each fold's training part
(:mod:`reports.probe_models`), the metrics over the folds with their intervals and the paired
differences between encoders (:mod:`reports.probe_metrics`); then the files and the page
(:mod:`reports.probe_page`). Beside the encoders, a constant reference: the training mean
(regression) or the training prevalence (classes).
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from cohorts.probe_data import INPUTS, WindowRule, check_classes, load_probe_dataset
from cohorts.profiles import DEFAULT_PROFILE, PROFILES
from phewas.base.errors import InputError, PhewasError
from phewas.base.io import atomic_dir, check_output, write_manifest
from phewas.base.progress import progress
from phewas.base.settings import check_settings, setting

from .compare import model_names
from .probe_metrics import MAIN_METRIC, METRICS, FoldResult, summarise
from .probe_models import MULTICLASS, RELEASE_BOOTSTRAP, fit_probe, release_fit, release_labels
from .probe_page import PROTOCOL_TEXT, write_probe
from .probe_split import EVALUATIONS, plan

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
    seed: int = setting(0, "seed of the splits, the folds, the bootstrap and the random encoder")
    evaluation: str = setting("auto", "split: one 8:2 split (the paper's); repeated: --splits subject splits; "
                              "loso: leave one subject out; auto: repeated where one split's test part would "
                              "hold fewer than 10 subjects, else split", choices=EVALUATIONS)
    splits: int = setting(10, "subject splits of --evaluation repeated")
    refit_search: bool = setting(False, "under --evaluation repeated, search each bootstrap resample's "
                                 "hyperparameters anew (25-40 times slower; default: the evaluation's most chosen)")
    test_fraction: float = setting(0.2, "share of subjects (or examples) held out when there is no official split")
    folds: int = setting(5, "cross-validation folds that choose the hyperparameters on the training part")
    bootstrap: int | None = setting(None, "bootstrap resamples for the intervals (default: 1000 of the test "
                                    "subjects; 50 of all subjects, each refitted, under --evaluation repeated; "
                                    "500 of the test rows under --protocol anyppg)")
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
            (self.evaluation in EVALUATIONS, "evaluation", f"one of {EVALUATIONS}"),
            (self.splits >= 2, "splits", "at least 2"),
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


@dataclass(frozen=True)
class ProbeInputs:
    """What ``probe`` probes: flags, and keys of ``run-all``'s ``[probe]`` table (there the
    dataset is relative to the config file, and ``encoders`` are added to the pretraining run and
    random weights, as a list or a table ``NAME = spec``)."""

    dataset: Path = setting(help="a dataset folder (dataset.toml, labels.csv)", required=True)
    encoders: tuple[str, ...] = setting(help="pretraining or fine-tuning run folders, AnyPPG weights "
                                        "(.pth/.safetensors), or random", flag=("--encoders", "--encoder"),
                                        factory=tuple, many=True, required=True, metavar="SPEC")


@dataclass(frozen=True)
class Settings:
    """One way of probing (see :func:`probe`): the window rule, the protocol, the evaluation, the
    bootstrap's size, and the name of the pass (``main``, or ``paper`` for ``paper_table.csv``)."""

    rule: WindowRule
    protocol: str
    evaluation: str
    bootstrap: int | None  # None: the evaluation's and protocol's default (:func:`bootstrap_rounds`)
    name: str = "main"

    def describe(self) -> dict:
        return {"preprocess": self.rule.preprocess, "input": self.rule.input, "protocol": self.protocol,
                "evaluation": self.evaluation, "bootstrap": self.bootstrap}


REFITS = 50  # --evaluation repeated: subject resamples, each evaluated anew (its probes refitted)
REFIT_SPLITS = 5  # splits of each resample's evaluation


def bootstrap_rounds(given: int | None, evaluation: str, protocol: str) -> int:
    """The bootstrap's resamples: ``given``, else 50 refitted subject resamples for repeated
    splits, 500 test rows under the release's protocol (its own), 1,000 test subjects otherwise."""
    if given is not None:
        return given
    if evaluation == "repeated":
        return REFITS
    return RELEASE_BOOTSTRAP if protocol == "anyppg" else GROUPED_BOOTSTRAP


def probe_settings(cfg: ProbeConfig) -> list[Settings]:
    """The passes a probe runs: its own settings (``main``), and the release's for
    ``paper_table.csv`` (``paper``: its input, protocol and single split) when ``cfg.paper`` asks
    for them and they differ."""
    main = Settings(WindowRule(cfg.preprocess, cfg.input, cfg.max_invalid, cfg.min_seconds), cfg.protocol,
                    cfg.evaluation, cfg.bootstrap)
    if cfg.paper != "anyppg":
        return [main]
    paper = Settings(WindowRule("anyppg", "anyppg", cfg.max_invalid, cfg.min_seconds), "anyppg", "split",
                     cfg.bootstrap, "paper")
    same = (paper.rule, paper.protocol, paper.evaluation) == (main.rule, main.protocol, main.evaluation)
    return [main] if same else [main, paper]


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


TABLE_SCHEMA = {"encoder": pl.String, "task": pl.String, "kind": pl.String, "evaluation": pl.String,
                "metric": pl.String, "value": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
                "interval": pl.String, "n_train": pl.Int64, "n_test": pl.Int64, "n_subjects": pl.Int64,
                "penalty": pl.Float64, "hyperparameters": pl.String, "note": pl.String}
FOLD_SCHEMA = {"encoder": pl.String, "task": pl.String, "fold": pl.String, "metric": pl.String, "value": pl.Float64}
PAIR_SCHEMA = {"task": pl.String, "kind": pl.String, "evaluation": pl.String, "metric": pl.String,
               "encoder_a": pl.String, "encoder_b": pl.String, "difference": pl.Float64, "ci_low": pl.Float64,
               "ci_high": pl.Float64, "includes_zero": pl.Boolean, "interval": pl.String}


def _plain(value):
    """JSON for numpy scalars in hyperparameters."""
    return value.item() if hasattr(value, "item") else str(value)


def task_rows(name: str, task: str, kind: str, results, notes, settings: Settings, plan_label: str,
              evaluation: str, seed: int, refits: dict | None = None) -> tuple[list[dict], list[dict]]:
    """An encoder's rows of ``probe.csv`` for a task (a metric each, or a note why none) and of
    ``probe_folds.csv``; ``refits``: the intervals of a repeated evaluation (:func:`refit_bootstrap`)."""
    base = {"encoder": name, "task": task, "kind": kind, "evaluation": plan_label}
    if results is None:
        return [base | {"note": "; ".join(notes)}], []
    s = summarise(kind, evaluation, [results], rounds=0 if refits else settings.bootstrap, seed=seed,
                  protocol=settings.protocol)
    if refits is not None:
        s.intervals, s.interval = refits["intervals"], refits["interval"]
    first = results[0].hyper
    hyper = first if len(results) == 1 else [r.hyper for r in results]
    penalty = first.get("C", first.get("alpha")) if len(results) == 1 else None
    counts = {"n_train": int(round(np.mean([r.n_train for r in results]))),
              "n_test": int(sum(len(r.y) for r in results)) if evaluation == "loso"
              else int(round(np.mean([len(r.y) for r in results]))), "n_subjects": s.subjects}
    if kind != "regression" and evaluation != "loso" and any(len(np.unique(r.y)) < 2 for r in results):
        notes = [*notes, "a test part holds one class: no AUC there"]
    if kind != "regression" and evaluation == "loso":
        notes = [*notes, "AUC pooled over the held-out subjects' predictions: biased low with few subjects "
                         "(docs/methods.md)"]
    rows = [base | counts | {"metric": m, "value": v, "ci_low": s.intervals[m][0], "ci_high": s.intervals[m][1],
                             "interval": s.interval, "penalty": penalty,
                             "hyperparameters": json.dumps(hyper, default=_plain), "note": "; ".join(notes) or None}
            for m, v in s.values.items()]
    folds = [{"encoder": name, "task": task, "fold": r.name, "metric": m, "value": v}
             for r, per in zip(results, s.per_fold) for m, v in per.items()] if len(results) > 1 else []
    return rows, folds


def pair_rows(task: str, kind: str, fits: dict, settings: Settings, plan_label: str, evaluation: str,
              seed: int, refits: dict | None = None) -> list[dict]:
    """``probe_pairs.csv``'s rows of a task: the main metric's difference between every two
    encoders (``a`` minus ``b``) on the same folds and subjects, with its interval (from the same
    resamples for both: paired)."""
    metric = MAIN_METRIC[kind]
    rows = []
    for a, b in itertools.combinations([n for n, f in fits.items() if f is not None], 2):
        s = summarise(kind, evaluation, [fits[a], fits[b]], rounds=0 if refits else settings.bootstrap, seed=seed,
                      protocol="grouped")
        if refits is not None:
            s.intervals = {metric: refits["pairs"].get((a, b), (float("nan"), float("nan")))}
            s.interval = refits["interval"]
        lo, hi = s.intervals[metric]
        rows.append({"task": task, "kind": kind, "evaluation": plan_label, "metric": metric, "encoder_a": a,
                     "encoder_b": b, "difference": s.values[metric], "ci_low": lo, "ci_high": hi,
                     "includes_zero": bool(lo <= 0 <= hi) if np.isfinite(lo) and np.isfinite(hi) else None,
                     "interval": s.interval})
    return rows


def common_hyperparameters(results) -> dict | None:
    """The hyperparameters the folds of an evaluation chose most often (None for the constant)."""
    chosen = [json.dumps(r.hyper, sort_keys=True, default=_plain) for r in results or [] if r.hyper
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


def _cache_folder(dataset: Path, cfg: ProbeConfig):
    """The cache folder, and a context that removes it at the end when it is a temporary one."""
    if cfg.cache is not None:
        return Path(cfg.cache), nullcontext()
    own = Path(dataset) / "cache"
    if os.access(own if own.exists() else Path(dataset), os.W_OK):
        return own, nullcontext()
    tmp = tempfile.TemporaryDirectory(prefix="phewas-probe-cache-")
    return Path(tmp.name), tmp


def probe(dataset, encoders: list[str], out, names: list[str] | None = None, config: ProbeConfig | None = None,
          overwrite: bool = False) -> dict:
    """``phewas probe``: probe each encoder on each task of ``dataset``; write ``probe.csv``,
    ``probe_folds.csv``, ``probe_pairs.csv``, ``paper_table.csv``, figures and the HTML page.
    Returns ``summary.json``'s content.

    ``probe.csv`` holds the run's own settings (:class:`ProbeConfig`); ``paper_table.csv`` the
    paper's layout, by the release's input, protocol and single split unless ``paper`` says
    otherwise (a second pass over the same encoders, recorded in ``summary.json``)."""
    cfg = config or ProbeConfig()
    if not encoders:
        raise PhewasError("probe needs at least one --encoder")
    check_output(out, overwrite=overwrite)  # before any work
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
    summary = {**main["summary"], "paper_table": {**paper["summary"]["settings"], "split": paper["summary"]["split"]}
               if cfg.paper != "none" else None}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_probe(tmp, main, summary, all_names, paper=paper if cfg.paper != "none" else None)
        write_manifest(tmp, command="probe", inputs={"dataset": str(Path(dataset).resolve()),
                                                     "encoders": {n: main["summary"]["encoders"][n] for n in names}},
                       parameters=asdict(cfg), counts={"examples": summary["examples"], "windows": summary["windows"]})
    return summary | {"table": main["table"].to_dicts()}


def _probe_pass(dataset, names: list[str], models: list[tuple], cfg: ProbeConfig, settings: Settings, cache: Path,
                workers: int) -> dict:
    """Every encoder on every task by one :class:`Settings`: ``{"table", "folds", "pairs",
    "summary"}``."""
    from encoder.embed import cached_embeddings

    data = load_probe_dataset(dataset, rule=settings.rule, cache=cache, workers=workers)
    tasks = data.tasks if cfg.task is None else {cfg.task: data.tasks.get(cfg.task)}
    if None in tasks.values():
        raise InputError(Path(dataset) / "dataset.toml", f"no task {cfg.task!r}; tasks: {', '.join(data.tasks)}")
    check_classes(dataset, data.labels, tasks)
    try:
        evaluation = plan(data.labels, settings.evaluation, test_fraction=cfg.test_fraction, seed=cfg.seed,
                          splits=cfg.splits, class_tasks=[t for t, k in tasks.items() if k != "regression"])
    except ValueError as err:
        raise InputError(Path(dataset) / "labels.csv", str(err)) from None
    subject = data.labels["subject"].to_numpy()
    groups = subject if data.labels["subject"].is_not_null().all() else np.arange(data.labels.height).astype(str)
    fits: dict = {t: {} for t in tasks}
    notes: dict = {t: {} for t in tasks}
    kept: dict = {}  # example embeddings, kept for the refit bootstrap of repeated splits
    per_encoder = {}
    label = "" if settings.name == "main" else f" ({settings.name})"
    settings = replace(settings, bootstrap=bootstrap_rounds(settings.bootstrap, evaluation.kind, settings.protocol))
    refit = evaluation.kind == "repeated" and settings.bootstrap > 0

    def run(name, X):
        for task, kind in progress(tasks.items(), desc=f"probe {name}{label}", unit="task"):
            fits[task][name], notes[task][name] = fit_task(X, data.labels, task, kind, evaluation.folds, groups, cfg,
                                                           settings.protocol, workers)
        if refit:
            kept[name] = X

    for name, (model, desc) in zip(names, models):
        emb = cached_embeddings(model, f"{desc['key']}-{data.key}", data.windows, cache,
                                batch=cfg.batch_size, device=cfg.device, workers=workers)
        per_encoder[name] = {k: v for k, v in desc.items() if k != "architecture"} | {"dim": int(emb.shape[1])}
        run(name, example_embeddings(emb, data.example_of, data.labels.height, desc["aggregate"]))
        del emb
    if cfg.reference:
        run(REFERENCE, None)
    rows, fold_rows, pairs = [], [], []
    for task, kind in tasks.items():
        fixed = None if cfg.refit_search else {n: common_hyperparameters(fits[task].get(n)) for n in kept}
        refits = refit_bootstrap(kept, data.labels, task, kind, cfg, settings.protocol, settings.bootstrap, cfg.seed,
                                 workers, fixed=fixed) if refit else None
        for name in fits[task]:
            r, f = task_rows(name, task, kind, fits[task][name], notes[task][name], settings, evaluation.label,
                             evaluation.kind, cfg.seed,
                             None if refits is None else {"intervals": refits["intervals"][name],
                                                          "interval": refits["interval"]})
            rows += r
            fold_rows += f
        pairs += pair_rows(task, kind, fits[task], settings, evaluation.label, evaluation.kind, cfg.seed, refits)
    rule = settings.rule
    summary = {"settings": settings.describe() | {"evaluation": evaluation.label},
               "dataset": data.name, "examples": data.labels.height, "windows": int(len(data.windows)),
               "rejected_examples": data.rejected, "unused_window_rows": data.unused_rows,
               "split": evaluation.how, "evaluation": evaluation.label,
               "subjects": int(len(np.unique(groups))),
               "test_examples": int(np.mean([f.test.sum() for f in evaluation.folds])),
               "tasks": tasks, "encoders": per_encoder,
               "hyperparameters": {f"{r['encoder']}/{r['task']}": json.loads(r["hyperparameters"])
                                   for r in rows if r.get("hyperparameters") and r["metric"] in ("mae", "auc")},
               "window_rule": (f"preprocessing profile {rule.preprocess}; " + (
                   "10-s windows of each example, embeddings averaged; shorter examples (>= min_seconds) "
                   "zero-padded" if rule.input == "windows" else
                   "each example as one window Fourier-resampled to 1,250 samples (the release's)")),
               "protocol": PROTOCOL_TEXT[settings.protocol] | (
                   {"multiclass": f"{cfg.multiclass}, by inner-fold accuracy"} if settings.protocol == "grouped"
                   else {})}
    return {"table": pl.DataFrame(rows, schema=TABLE_SCHEMA), "folds": pl.DataFrame(fold_rows, schema=FOLD_SCHEMA),
            "pairs": pl.DataFrame(pairs, schema=PAIR_SCHEMA), "summary": summary}


__all__ = ["METRICS", "ProbeConfig", "probe", "example_embeddings"]
