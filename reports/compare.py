"""``phewas compare``: models side by side per phenotype, on the same held-out stays.

For each pair of models and each phecode that both report: the two AUCs and their paired
difference, with a patient-clustered DeLong interval and p-value (the AUCs are correlated: same
stays, same patients), Benjamini-Hochberg q-values within each pair, and the phenotypes on which
either model is significantly better. The stays, exclusions and ``--min-positives`` rule are
``report``'s, applied to the stays that every model scored.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from cohorts.phecodes import chapter_rank
from cohorts.splits import SPLITS
from phewas.base.auc import auc_difference
from phewas.base.errors import InputError, PhewasError
from phewas.base.io import atomic_dir, file_sha256, write_json, write_manifest
from phewas.base.settings import check_settings, setting

from . import figures
from .html import write_page
from .intervals import auc_interval, difference_interval
from .multiple_testing import adjust
from .pages import compare_page
from .report import load_inputs, reportable

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # names become parts of file names


@dataclass
class CompareConfig:
    """Settings of ``compare``: each field is a flag of the same name, and a key of ``run-all``'s
    ``[compare]`` table (``min_positives``, ``split`` and the window rule default to ``report``'s)."""

    min_positives: int = setting(100, "compare phecodes with at least this many positive (and control) stays")
    split: str = setting("heldout", "the cohort split that the predictions cover", table="predict")
    alpha: float = setting(0.05, "FDR level (Benjamini-Hochberg, within each pair of models)")
    include_stays_without_windows: bool = setting(
        False, "also compare on stays whose store holds no valid window (predictions' n_windows = 0)")

    def __post_init__(self):
        check_settings(
            self,
            (self.min_positives >= 1, "min_positives", "at least 1"),
            (self.split in SPLITS, "split", f"one of {SPLITS}"),
            (0 < self.alpha < 1, "alpha", "between 0 and 1"),
        )


def model_names(predictions: list[Path], names: list[str] | None) -> list[str]:
    """The given names, checked; else each file's folder name (``RUN/predictions.parquet`` -> ``RUN``)."""
    if names is None:
        names = [Path(p).resolve().parent.name or f"model{i}" for i, p in enumerate(predictions)]
    elif len(names) != len(predictions):
        raise PhewasError(f"--names gives {len(names)} names for {len(predictions)} predictions files")
    for n in names:
        if not NAME.match(n):
            raise PhewasError(f"--names: {n!r} is not a usable model name (letters, digits, _ . + -)")
    if len(set(names)) != len(names):
        raise PhewasError(f"--names: names repeat ({', '.join(names)}); give each model its own with --names")
    return list(names)


@dataclass
class ModelInputs:
    """Several models' inputs on common ground (:func:`load_models`): ``stays``, ``y`` and ``info``
    as :class:`~reports.report.ReportInputs`' and ``scores``, one ``[n, p]`` array per model, in
    the cohort's stay and phecode order; ``counts`` of what was left out."""

    stays: pl.DataFrame
    y: np.ndarray
    scores: list[np.ndarray]
    info: pl.DataFrame
    counts: dict


def load_models(cohort, predictions, split: str, include_without_windows: bool) -> ModelInputs:
    """Each model's inputs as ``report`` reads them, restricted to the stays that every model
    scored and the phecodes that every model predicts."""
    loaded = [load_inputs(cohort, p, split, include_without_windows) for p in predictions]
    ids = set.intersection(*(set(m.stays["stay_id"]) for m in loaded))
    codes = set.intersection(*(set(m.info["phecode"]) for m in loaded))
    first = loaded[0]
    rows0 = first.stays["stay_id"].is_in(list(ids)).to_numpy()
    stays, info = first.stays.filter(pl.Series(rows0)), first.info.filter(pl.col("phecode").is_in(list(codes)))
    if not codes:
        raise InputError(predictions[1], "shares no phecode column with " + str(predictions[0]))
    order = stays["stay_id"].to_list()
    scores = []
    for m in loaded:
        pos = dict(zip(m.stays["stay_id"].to_list(), range(m.stays.height)))
        col = dict(zip(m.info["phecode"].to_list(), range(m.info.height)))
        scores.append(m.scores[np.array([pos[i] for i in order], dtype=np.int64)][:, [col[c] for c in info["phecode"]]])
    col0 = dict(zip(first.info["phecode"].to_list(), range(first.info.height)))
    y = first.y[rows0][:, [col0[c] for c in info["phecode"]]]
    counts = {"stays": stays.height, "phecodes_in_common": info.height,
              "stays_left_out": {"without_windows": [m.n_left_out for m in loaded],
                                 "not_scored_by_every_model": int(max(m.stays.height for m in loaded) - stays.height)}}
    return ModelInputs(stays, y, scores, info, counts)


def compare_pair(y, a, b, groups, alpha: float) -> dict[str, np.ndarray]:
    """:class:`~phewas.base.auc.AUCDifference`'s arrays, with each AUC's interval, the difference's
    interval and p-value, and BH q-values."""
    r = auc_difference(a, b, y, groups=groups)
    out = dict(vars(r))
    for key in ("a", "b"):
        out[f"auc_{key}_ci_low"], out[f"auc_{key}_ci_high"], out[f"df_{key}"] = auc_interval(r.single(key))
    out["diff_ci_low"], out["diff_ci_high"], out["p_value"], out["df"] = difference_interval(r)
    out["q_value"] = adjust(out["p_value"], alpha)[0]
    return out


def explorer_data(table: pl.DataFrame, info: pl.DataFrame, y: np.ndarray, scores: list[np.ndarray],
                  stays: pl.DataFrame, names: list[str], alpha: float) -> dict:
    """The page's explorer data (:mod:`reports.explorer`): the comparison's rows, and per phecode
    every model's ROC curve on the same stays."""
    from .explorer import page_data, phenotype_data
    from .pages import compare_page

    position = {c: j for j, c in enumerate(info["phecode"].to_list())}
    return page_data(compare_page(), table, alpha=alpha,
                     pairs=[list(p) for p in dict.fromkeys(zip(table["model_a"].to_list(),
                                                                table["model_b"].to_list()))],
                     detail_index=[position[c] for c in table["phecode"].to_list()], models=list(names),
                     **phenotype_data(table, y, scores, stays))


def compare(cohort, predictions, out, names=None, config: CompareConfig | None = None,
            overwrite: bool = False) -> dict:
    """Compare two or more models' predictions; write the tables, figures and HTML page to ``out``.
    Returns ``summary.json``'s content."""
    cfg = config or CompareConfig()
    predictions = [Path(p) for p in predictions]
    if len(predictions) < 2:
        raise PhewasError("compare needs at least two predictions files")
    names = model_names(predictions, names)
    models = load_models(cohort, predictions, cfg.split, cfg.include_stays_without_windows)
    stays, y, scores, info, counts = models.stays, models.y, models.scores, models.info, models.counts
    keep = reportable(y, cfg.min_positives, predictions[0], cfg.split, "phecode that every model predicts")
    y, scores, info = y[:, keep], [s[:, keep] for s in scores], info.filter(pl.Series(keep))
    groups = stays["patient_id"].to_numpy()
    tables, pair_summaries = [], []
    for i, j in itertools.combinations(range(len(names)), 2):
        r = compare_pair(y, scores[i], scores[j], groups, cfg.alpha)
        sig = np.nan_to_num(r["q_value"], nan=1.0) <= cfg.alpha
        better = np.where(sig & (r["diff"] > 0), names[i], np.where(sig & (r["diff"] < 0), names[j], None))
        tables.append(info.with_columns(
            model_a=pl.lit(names[i]), model_b=pl.lit(names[j]),
            n_pos=pl.Series(r["n_pos"]), n_neg=pl.Series(r["n_neg"]),
            auc_a=pl.Series(r["auc_a"]), auc_a_ci_low=pl.Series(r["auc_a_ci_low"]),
            auc_a_ci_high=pl.Series(r["auc_a_ci_high"]),
            auc_b=pl.Series(r["auc_b"]), auc_b_ci_low=pl.Series(r["auc_b_ci_low"]),
            auc_b_ci_high=pl.Series(r["auc_b_ci_high"]),
            auc_diff=pl.Series(r["diff"]), diff_ci_low=pl.Series(r["diff_ci_low"]),
            diff_ci_high=pl.Series(r["diff_ci_high"]), diff_df=pl.Series(r["df"]),
            p_value=pl.Series(r["p_value"]), q_value=pl.Series(r["q_value"]),
            better=pl.Series(better.tolist(), dtype=pl.String)))
        pair_summaries.append({
            "model_a": names[i], "model_b": names[j], "n_phenotypes": int(keep.sum()),
            "mean_auc_a": float(np.mean(r["auc_a"])), "mean_auc_b": float(np.mean(r["auc_b"])),
            "mean_diff": float(np.mean(r["diff"])), "median_diff": float(np.median(r["diff"])),
            "n_a_higher": int((r["diff"] > 0).sum()), "n_b_higher": int((r["diff"] < 0).sum()),
            "n_a_better": int((sig & (r["diff"] > 0)).sum()), "n_b_better": int((sig & (r["diff"] < 0)).sum()),
            "n_untestable": int(np.isnan(r["p_value"]).sum())})
    table = pl.concat(tables)
    table = table.sort("model_a", "model_b", chapter_rank(pl.col("chapter")), "phecode", maintain_order=True)
    chapters = (table.group_by("model_a", "model_b", "chapter", maintain_order=True)
                .agg(pl.len().alias("n_phenotypes"), pl.col("auc_a").mean().alias("mean_auc_a"),
                     pl.col("auc_b").mean().alias("mean_auc_b"), pl.col("auc_diff").mean().alias("mean_diff"),
                     (pl.col("better") == pl.col("model_a")).sum().alias("n_a_better"),
                     (pl.col("better") == pl.col("model_b")).sum().alias("n_b_better")))
    summary = {"split": cfg.split, "n_stays": stays.height, "min_positives": cfg.min_positives, "alpha": cfg.alpha,
               "models": [{"name": n, "predictions": str(p.resolve())} for n, p in zip(names, predictions)],
               "counts": counts, "pairs": pair_summaries,
               "test": "paired difference of AUCs, patient-clustered DeLong (Obuchowski) variance scaled by the "
                       "floor of the single AUCs' variances, Student's t on Satterthwaite's df over effective "
                       "patients; BH q-values within each pair"}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        table.write_parquet(tmp / "comparison.parquet")
        table.write_csv(tmp / "comparison.csv")
        chapters.write_csv(tmp / "chapters.csv")
        write_json(tmp / "summary.json", summary)
        figs = {}
        for ps in pair_summaries:
            a, b = ps["model_a"], ps["model_b"]
            sub = table.filter((pl.col("model_a") == a) & (pl.col("model_b") == b))
            figs[f"AUC: {a} vs {b}"] = figures.auc_scatter(sub, a, b, cfg.alpha, tmp)[0]
            figs[f"AUC difference {a} - {b}"] = figures.manhattan_difference(sub, a, b, cfg.alpha, tmp)[0]
        heads = [("stays", stays.height), ("phenotypes", int(keep.sum()))] + [
            (f"{p['model_a']} better / {p['model_b']} better (FDR {cfg.alpha:g})",
             f"{p['n_a_better']} / {p['n_b_better']}") for p in pair_summaries]
        intro = (f"Split <code>{cfg.split}</code>: the {stays.height} stays that every model scored; phenotypes "
                 f"with at least {cfg.min_positives} positive and {cfg.min_positives} control stays. Difference "
                 "of AUCs with a paired, patient-clustered DeLong interval; BH q-values within each pair.")
        write_page(tmp, title="phewas compare", heading="Which model detects which diseases better?",
                   intro=intro, heads=heads, figures=figs, table_title="Phenotypes and pairs",
                   explorer=explorer_data(table, info, y, scores, stays, names, cfg.alpha),
                   table=table.select(compare_page().table))
        write_manifest(tmp, command="compare",
                       inputs={"cohort": str(Path(cohort).resolve()),
                               "predictions": [{"name": n, "path": str(p.resolve()), "sha256": file_sha256(p)}
                                               for n, p in zip(names, predictions)]},
                       parameters=asdict(cfg), counts={"phenotypes": int(keep.sum()), "stays": stays.height,
                                                       "pairs": len(pair_summaries)})
    return summary
