"""``phewas probe``: probes of frozen PPG encoders on labelled PPG datasets (the AnyPPG paper's
first stage), several encoders side by side.

Reads top to bottom: the settings and the passes (:mod:`reports.probe_config`: this run's
settings, and the release's for ``paper_table.csv``), and per pass: the dataset's windows by the
window rule (:mod:`cohorts.probe_data`), each encoder's cached embeddings pooled per example
(:mod:`reports.probe_embeddings`), the evaluation's folds (:mod:`reports.probe_split`), a probe
fitted on each fold's training part (:mod:`reports.probe_fit`, :mod:`reports.probe_models`), the
metrics over the folds with their intervals and the paired differences between encoders
(:mod:`reports.probe_metrics`), and this module's rows of the tables; then the files and the page
(:mod:`reports.probe_page`). Beside the encoders, a constant reference: the training mean
(regression) or the training prevalence (classes).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import polars as pl

from cohorts.probe_data import check_classes, load_probe_dataset
from phewas.base.errors import InputError, PhewasError
from phewas.base.io import atomic_dir, check_output, write_manifest
from phewas.base.progress import progress

from .probe_config import REFERENCE, ProbeConfig, ProbeInputs, Settings, bootstrap_rounds, probe_settings
from .probe_embeddings import cache_folder, encoder_names, example_embeddings, load_encoders
from .probe_fit import common_hyperparameters, fit_task, plain_json, refit_bootstrap
from .probe_metrics import MAIN_METRIC, METRICS, summarise
from .probe_page import PROTOCOL_TEXT, write_probe
from .probe_split import plan

TABLE_SCHEMA = {"encoder": pl.String, "task": pl.String, "kind": pl.String, "evaluation": pl.String,
                "metric": pl.String, "value": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
                "interval": pl.String, "n_train": pl.Int64, "n_test": pl.Int64, "n_subjects": pl.Int64,
                "penalty": pl.Float64, "hyperparameters": pl.String, "note": pl.String}
FOLD_SCHEMA = {"encoder": pl.String, "task": pl.String, "fold": pl.String, "metric": pl.String, "value": pl.Float64}
PAIR_SCHEMA = {"task": pl.String, "kind": pl.String, "evaluation": pl.String, "metric": pl.String,
               "encoder_a": pl.String, "encoder_b": pl.String, "difference": pl.Float64, "ci_low": pl.Float64,
               "ci_high": pl.Float64, "includes_zero": pl.Boolean, "interval": pl.String}


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
                             "hyperparameters": json.dumps(hyper, default=plain_json), "note": "; ".join(notes) or None}
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
    names = encoder_names(encoders, names)
    workers = cfg.workers or os.cpu_count() or 1
    cache, cleanup = cache_folder(Path(dataset), cfg)
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


__all__ = ["METRICS", "ProbeConfig", "ProbeInputs", "example_embeddings", "probe"]
