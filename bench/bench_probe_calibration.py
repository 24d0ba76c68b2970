"""Benchmark: do the probe's intervals cover the skill they claim, with few subjects?

    python bench/bench_probe_calibration.py [--replicates 100] [--sizes 6,12,24] [--rounds 300]

A simulated population (``simulate-probe``: 300 subjects, 3 records each; heart rate, AF and
stiffness, and a null task: a random subject-level label of prevalence 0.3, whose true AUC is 0.5)
is embedded once with the pulse features. For each size ``n``, each replicate draws ``n`` of its
subjects, runs each evaluation (one split, 10 repeated splits, leave one subject out) with the
grouped protocol, and records whether the 95% interval of each task's main metric holds the true
skill: the mean, over 200 probes each trained on as many random subjects as the evaluation trains
on, of their metric on all the population's other subjects (errors per subject, averaged). For
repeated splits it compares the refitted bootstrap the probe uses (each resample's probes with
the evaluation's most chosen hyperparameters, ``refit_fixed``; ``refit``: searched anew, as
``--refit-search`` does) with two cheaper intervals it does not use (the corrected resampled t,
the spread of the splits). ``coverage_conditional``:
whether the interval holds the skill of the very probes the replicate trained. Prints one JSON
line: coverage, median interval width, the share of replicates with no interval, per size,
evaluation and task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cohorts.probe_data import load_probe_dataset  # noqa: E402
from cohorts.sim.probe import SimulateProbeConfig, simulate_probe_dataset  # noqa: E402
from phewas.base.progress import set_quiet  # noqa: E402
from reports.probe import ProbeConfig, example_embeddings  # noqa: E402
from reports.probe_config import REFITS  # noqa: E402
from reports.probe_fit import common_hyperparameters, fit_fold, fit_task, refit_bootstrap  # noqa: E402
from reports.probe_metrics import MAIN_METRIC, summarise, task_metrics  # noqa: E402
from reports.probe_split import plan  # noqa: E402

TASKS = {"heart_rate": "regression", "af": "binary", "stiffness": "regression", "null": "binary"}
EVALUATIONS = ("split", "repeated", "loso")
# the intervals compared: each evaluation's candidates (summarise's ``repeated`` and ``loso``)
VARIANTS = {"split": [{}], "repeated": [{"repeated": "refit"}, {"repeated": "refit_fixed"}, {"repeated": "corrected_t"},
                                       {"repeated": "spread"}],
            "loso": [{"loso": "bootstrap"}, {"loso": "t"}]}


def population(folder: Path, subjects: int, seed: int):
    from encoder.embed import PulseFeatures, embed
    simulate_probe_dataset(folder, SimulateProbeConfig(subjects=subjects, records_per_subject=3, seed=seed))
    data = load_probe_dataset(folder, workers=2)
    emb = embed(PulseFeatures(), data.windows, workers=2)
    X = example_embeddings(emb, data.example_of, data.labels.height, "median")
    labels = data.labels
    rng = np.random.default_rng(seed + 1)
    subj = labels["subject"].unique().sort().to_list()
    null = dict(zip(subj, (rng.random(len(subj)) < 0.3).astype(int).astype(str)))
    labels = labels.with_columns(pl.col("subject").replace_strict(null).alias("null"))
    return X, labels


def train_size(evaluation: str, n: int, test_fraction: float = 0.2) -> int:
    return n - 1 if evaluation == "loso" else n - max(1, int(round(test_fraction * n)))


def true_skill(X, labels, pool, task, kind, m, draws, rng, cfg) -> float:
    """The mean metric of ``draws`` probes, each trained on ``m`` random subjects of the
    population and measured on all its other subjects (as the evaluations fit them:
    :func:`reports.probe_fit.fit_fold`): errors averaged over subjects (each subject's own error),
    the AUC over all the examples."""
    subj = labels["subject"].to_numpy()
    y_all = labels[task].to_numpy()
    y_all = y_all.astype(np.float64) if kind == "regression" else y_all.astype(str)
    values = []
    while len(values) < draws:
        train = np.isin(subj, rng.choice(pool, m, replace=False))
        test = ~train
        if kind != "regression" and len(np.unique(y_all[train])) < 2:
            continue
        fold, _ = fit_fold(X, y_all, kind, train, test, subj, cfg, "grouped", 1)
        if kind == "regression":
            err = pl.DataFrame({"s": fold.groups, "e": np.abs(fold.pred - fold.y)})
            values.append(float(err.group_by("s").agg(pl.col("e").mean())["e"].mean()))
        else:
            values.append(task_metrics(kind, fold.y, fold.pred)[MAIN_METRIC[kind]])
    return float(np.mean(values))


def conditional_skill(X, labels, keep, others, folds, task, kind, cfg) -> float:
    """The mean, over an evaluation's folds, of the fold's probe's metric on new people (the
    population outside the replicate): the skill of the probes the replicate trained."""
    subj = labels["subject"].to_numpy()
    y_all = labels[task].to_numpy()
    y_all = y_all.astype(np.float64) if kind == "regression" else y_all.astype(str)
    have = labels[task].is_not_null().to_numpy()
    values = []
    for fold in folds:
        train = np.zeros(len(keep), bool)
        train[np.flatnonzero(keep)[~fold.test]] = True
        train &= have
        if kind != "regression" and len(np.unique(y_all[train])) < 2:
            continue
        f, _ = fit_fold(X, y_all, kind, train, others & have, subj, cfg, "grouped", 1)
        if kind == "regression":
            err = pl.DataFrame({"s": f.groups, "e": np.abs(f.pred - f.y)})
            values.append(float(err.group_by("s").agg(pl.col("e").mean())["e"].mean()))
        else:
            values.append(task_metrics(kind, f.y, f.pred)[MAIN_METRIC[kind]])
    return float(np.mean(values)) if values else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--sizes", default="6,12,24")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--truth-draws", type=int, default=200)
    ap.add_argument("--population", type=int, default=300)
    ap.add_argument("--refits", type=int, default=REFITS)
    ap.add_argument("--partial", help="rewrite this JSON file after each size")
    ap.add_argument("--variants", default="refit,refit_fixed,corrected_t,spread,bootstrap,t",
                    help="the intervals to compare (refit, the searched one, is the slowest)")
    a = ap.parse_args()
    wanted = set(a.variants.split(","))
    variants = {ev: [v for v in vs if not v or set(v.values()) & wanted] for ev, vs in VARIANTS.items()}
    set_quiet(True)
    t0 = time.perf_counter()
    sizes = [int(s) for s in a.sizes.split(",")]
    with tempfile.TemporaryDirectory() as d:
        X, labels = population(Path(d) / "pop", a.population, 11)
    pool = np.array(sorted(labels["subject"].unique().to_list()))
    rng = np.random.default_rng(5)
    out = {"bench": "probe_calibration", "population_subjects": len(pool), "replicates": a.replicates,
           "bootstrap_rounds": a.rounds}
    for n in sizes:
        started = time.perf_counter()
        cfg = ProbeConfig(folds=min(5, train_size("split", n)), bootstrap=a.rounds)
        truth = {(ev, task): true_skill(X, labels, pool, task, kind, train_size(ev, n), a.truth_draws, rng, cfg)
                 for ev in EVALUATIONS for task, kind in TASKS.items()}
        tally = {(ev, task, k): {"hit": 0, "hit_conditional": 0, "total": 0, "no_interval": 0, "widths": [],
                                 "values": []}
                 for ev in EVALUATIONS for task in TASKS for k in range(len(variants[ev]))}
        for _ in range(a.replicates):
            chosen = rng.choice(pool, n, replace=False)
            keep = labels["subject"].is_in(list(chosen)).to_numpy()
            sub, Xs = labels.filter(pl.Series(keep)), X[keep]
            groups = sub["subject"].to_numpy()
            seed = int(rng.integers(1 << 30))
            others = ~keep  # the population's other subjects: new people to these probes
            for ev in EVALUATIONS:
                p = plan(sub, ev, test_fraction=0.2, seed=seed, splits=10, class_tasks=["af", "null"])
                for task, kind in TASKS.items():
                    results, _ = fit_task(Xs, sub, task, kind, p.folds, groups, cfg, "grouped", 1)
                    conditional = None
                    if results is not None:  # the skill of these very probes on new people
                        conditional = conditional_skill(X, labels, keep, others, p.folds, task, kind, cfg)
                    for k, variant in enumerate(variants[ev]):
                        t = tally[(ev, task, k)]
                        t["total"] += 1
                        if results is None:
                            t["no_interval"] += 1
                            continue
                        refit = variant.get("repeated", "").startswith("refit")
                        s = summarise(kind, p.kind, [results], rounds=0 if refit else a.rounds, seed=seed,
                                      **({} if refit else variant))
                        if refit:
                            fixed = {"features": common_hyperparameters(results)} \
                                if variant["repeated"] == "refit_fixed" else None
                            s.intervals = refit_bootstrap({"features": Xs}, sub, task, kind, cfg, "grouped",
                                                          a.refits, seed, 1, fixed=fixed)["intervals"]["features"]
                        metric = MAIN_METRIC[kind]
                        lo, hi = s.intervals[metric]
                        t["values"].append(s.values[metric])
                        if not (np.isfinite(lo) and np.isfinite(hi)):
                            t["no_interval"] += 1
                            continue
                        t["hit"] += lo <= truth[(ev, task)] <= hi
                        t["hit_conditional"] += lo <= conditional <= hi
                        t["widths"].append(hi - lo)
        for (ev, task, k), t in tally.items():
            with_interval = t["total"] - t["no_interval"]
            name = "/".join(str(v) for v in variants[ev][k].values())
            out[f"n{n}/{ev}{'/' + name if name else ''}/{task}"] = {
                "true": round(truth[(ev, task)], 3),
                "coverage": round(t["hit"] / with_interval, 3) if with_interval else None,
                "coverage_conditional": round(t["hit_conditional"] / with_interval, 3) if with_interval else None,
                "no_interval": round(t["no_interval"] / t["total"], 3),
                "median_width": round(float(np.median(t["widths"])), 3) if t["widths"] else None,
                "mean_estimate": round(float(np.mean(t["values"])), 3) if t["values"] else None}
        out[f"n{n}/seconds"] = round(time.perf_counter() - started)
        if a.partial:  # each size's figures as they are done (a long run killed keeps them)
            Path(a.partial).write_text(json.dumps(out))
    out |= {"seconds": round(time.perf_counter() - t0), "cores": os.cpu_count(),
            "refits": a.refits,
            "command": f"python bench/bench_probe_calibration.py --replicates {a.replicates} --sizes {a.sizes} "
                       f"--rounds {a.rounds} --truth-draws {a.truth_draws} --variants {a.variants}"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
