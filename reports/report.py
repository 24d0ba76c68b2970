"""``phewas report``: which phenotypes the predictions detect, on the held-out population."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from cohorts.phecodes import chapter_rank
from cohorts.splits import SPLITS, TRAIN_SPLITS
from encoder.predictions import WINDOWS, read_predictions
from phewas.base.auc import auc_delong
from phewas.base.errors import InputError
from phewas.base.io import atomic_dir, file_sha256, write_json, write_manifest
from phewas.base.progress import progress
from phewas.base.settings import check_settings, floats, names, setting

from . import figures
from .adjustment import adjustment_design, adjustment_label, model_description
from .association import COLUMNS as ASSOC_COLUMNS
from .association import COUNT_COLUMNS, associate_all
from .html import write_html
from .intervals import auc_interval
from .multiple_testing import adjust


@dataclass
class ReportConfig:
    """Settings of ``report``: each field is a flag of the same name, and a key of ``run-all``'s
    ``[report]`` table (but ``split``, which ``[predict]`` sets)."""

    min_positives: int = setting(100, "report phecodes with at least this many positive (and control) stays "
                                 "and persons")
    split: str = setting("heldout", "the cohort split that the predictions cover", table="predict")
    thresholds: tuple = setting((0.5, 0.6, 0.7), "AUC thresholds, e.g. 0.5,0.6,0.7", parse=floats)
    alpha: float = setting(0.05, "FDR and family-wise level")
    folds: int = setting(5, "folds of the out-of-fold age/sex models")
    seed: int = setting(0, "seed of the folds")
    workers: int = setting(1, "processes for the association models")
    association: bool = setting(True, "skip the age/sex-adjusted models (AUCs only)", flag="--no-association")
    age_df: int = setting(5, "degrees of freedom of the restricted cubic spline of age in the adjustment")
    age_sex_interaction: bool = setting(False, "add age x sex terms to the adjustment")
    covariates: tuple = setting((), "columns of stays.parquet to adjust for beyond age and sex (text: "
                                "dummy-coded; numbers: linear)", many=True, metavar="COLUMN")
    spline_covariates: tuple = setting((), "numeric covariates to enter as splines like age", many=True,
                                       metavar="COLUMN")
    min_level_share: float = setting(0.01, "text covariates' levels rarer than this share of the stays "
                                     "are pooled into 'other'")
    # stays whose segment store holds no valid window got a constant (the training prevalence)
    # from `predict`: one tied score that pulls AUCs toward 0.5. Left out unless asked for.
    include_stays_without_windows: bool = setting(
        False, "also report stays whose store holds no valid window (predictions' n_windows = 0; "
        "`predict` gave them the training prevalence)")

    def __post_init__(self):
        self.thresholds = tuple(self.thresholds)
        self.covariates, self.spline_covariates = names(self.covariates), names(self.spline_covariates)
        check_settings(
            self,
            (self.min_positives >= 1, "min_positives", "at least 1"),
            (self.split in SPLITS, "split", f"one of {SPLITS}"),
            (len(self.thresholds) > 0 and all(0 < t < 1 for t in self.thresholds), "thresholds",
             "AUCs between 0 and 1"),
            (0 < self.alpha < 1, "alpha", "between 0 and 1"),
            (self.folds >= 2, "folds", "at least 2"),
            (self.workers >= 1, "workers", "at least 1"),
            (1 <= self.age_df <= 10, "age_df", "between 1 and 10"),
            (set(self.spline_covariates) <= set(self.covariates), "spline_covariates",
             "names among --covariates"),
            (len(set(self.covariates)) == len(self.covariates), "covariates", "distinct names"),
            (0 <= self.min_level_share < 0.5, "min_level_share", "between 0 and 0.5"),
        )




@dataclass
class ReportInputs:
    """A split's stays with their labels and scores, as :func:`load_inputs` reads them.

    Attributes
    ----------
    stays : polars.DataFrame
        The analysed stays (``stays.parquet``'s rows), in the cohort's order.
    y : numpy.ndarray
        int8 ``[n, p]``: 1 case, 0 control, -1 excluded.
    scores : numpy.ndarray
        float ``[n, p]``.
    info : polars.DataFrame
        ``phecode``, ``description``, ``chapter`` of the ``p`` columns, in the cohort's order.
    n_left_out : int
        Stays left out for having no window (``n_windows`` = 0).
    predictions : pathlib.Path
        The file read.
    cohort : pathlib.Path
        The cohort folder read.
    """

    stays: pl.DataFrame
    y: np.ndarray
    scores: np.ndarray
    info: pl.DataFrame
    n_left_out: int
    predictions: Path
    cohort: Path | None = None


def load_inputs(cohort: Path, predictions: Path, split: str, include_without_windows: bool = False) -> ReportInputs:
    """Read and check the cohort files and the predictions, restricted to ``split`` and, where
    the predictions carry ``n_windows``, to stays with a window unless ``include_without_windows``."""
    cohort, predictions = Path(cohort), Path(predictions)
    for name in ("stays.parquet", "labels.parquet", "phecodes.parquet"):
        if not (cohort / name).exists():
            raise InputError(cohort / name, "not found (is this a cohort folder from `phewas build-cohort`?)")
    stays = pl.read_parquet(cohort / "stays.parquet")
    info = pl.read_parquet(cohort / "phecodes.parquet").select("phecode", "description", "chapter")
    pred, phecodes = read_predictions(predictions, pl.read_parquet_schema(cohort / "labels.parquet"),
                                      stays["stay_id"])
    info = info.filter(pl.col("phecode").is_in(phecodes))
    phecodes = info["phecode"].to_list()  # the cohort's order
    chosen = stays.filter(pl.col("split") == split)
    if chosen.height == 0:
        raise InputError(cohort / "stays.parquet", f"no stays in split {split!r}", column="split")
    data = chosen.join(pred.with_columns(pl.col(phecodes).cast(pl.Float64)), on="stay_id", how="left")
    missing = data.filter(pl.col(phecodes[0]).is_null()).height
    if missing:
        raise InputError(predictions, f"{missing} of {chosen.height} {split!r} stays have no prediction")
    for c in phecodes:
        bad = data[c].is_null().sum() + (~data[c].is_finite()).sum()
        if bad:
            raise InputError(predictions, f"{bad} missing, NaN or infinite scores in split {split!r}", column=c)
    n_left_out = 0
    if WINDOWS in pred.columns and not include_without_windows:
        has = data[WINDOWS].fill_null(0) > 0
        n_left_out = int((~has).sum())
        data, chosen = data.filter(has), chosen.filter(has)
        if chosen.height == 0:
            raise InputError(predictions, f"no {split!r} stay has a window (n_windows); "
                             "--include-stays-without-windows reports them anyway", column=WINDOWS)
    scores = data.select(phecodes).to_numpy()
    labels = pl.read_parquet(cohort / "labels.parquet", columns=["stay_id", *phecodes])  # not all 1,817
    lab = chosen.select("stay_id").join(labels, on="stay_id", how="left")
    y = lab.select(phecodes).fill_null(-1).to_numpy().astype(np.int8)
    return ReportInputs(chosen, y, scores, info, n_left_out, predictions, cohort)


def not_trained(cohort: Path, predicted, split: str, min_positives: int) -> pl.DataFrame:
    """Phecodes with enough positive and control stays in ``split`` that the predictions lack
    (too few positive training stays for fine-tuning to target them), with their counts."""
    ph = pl.read_parquet(Path(cohort) / "phecodes.parquet")
    train = [f"n_cases_{s}" for s in TRAIN_SPLITS if f"n_cases_{s}" in ph.columns]
    if f"n_cases_{split}" not in ph.columns or not train:  # not written by build-cohort: unknown
        return pl.DataFrame(schema={"phecode": pl.String, "description": pl.String, "chapter": pl.String,
                                    "n_pos": pl.Int64, "n_pos_training": pl.Int64})
    return (ph.filter((pl.col(f"n_cases_{split}") >= min_positives) & (pl.col(f"n_controls_{split}") >= min_positives)
                      & ~pl.col("phecode").is_in(list(predicted)))
            .select("phecode", "description", "chapter", pl.col(f"n_cases_{split}").alias("n_pos"),
                    pl.sum_horizontal(train).alias("n_pos_training")))


def reportable(y: np.ndarray, min_positives: int, source, split: str, which: str = "phecode") -> np.ndarray:
    """Which columns of the labels ``y`` (1 positive, 0 control) have at least ``min_positives``
    positive and as many control stays; raises :class:`InputError` on ``source`` when none has."""
    n_pos, n_neg = (y == 1).sum(axis=0), (y == 0).sum(axis=0)
    keep = (n_pos >= min_positives) & (n_neg >= min_positives)
    if not keep.any():
        raise InputError(source, f"no {which} has at least {min_positives} positive and {min_positives} control "
                         f"stays in split {split!r} (the most: {int(n_pos.max())} positives); lower --min-positives")
    return keep


def phenotype_table(inputs: ReportInputs, cfg: ReportConfig, adjust_for=None,
                    coefficients: bool = False) -> pl.DataFrame:
    """One row per phenotype with enough positives and controls: counts, the AUC with its
    patient-clustered interval and, unless ``cfg.association`` is off, the association beyond the
    adjustment ``adjust_for`` (default :func:`adjustment`) with q-values; in chapter order. With
    ``coefficients``, a last column ``_coefficients`` holds each fitted model's coefficients (in
    the order of ``adjust_for.names`` and the score; not a column of the files written)."""
    y, scores, info, stays = inputs.y, inputs.scores, inputs.info, inputs.stays
    keep = reportable(y, cfg.min_positives, inputs.predictions, cfg.split)
    y, scores = y[:, keep], scores[:, keep]
    info = info.filter(pl.Series(keep))
    patient = stays["patient_id"].to_numpy()
    # patients return: their stays are clustered (Obuchowski's variance; docs/statistics.md)
    r = auc_delong(scores, y, groups=patient)
    lo, hi, df = auc_interval(r)
    table = info.with_columns(n_pos=pl.Series(r.n_pos), n_neg=pl.Series(r.n_neg), auc=pl.Series(r.auc),
                              auc_ci_low=pl.Series(lo), auc_ci_high=pl.Series(hi), auc_ci_df=pl.Series(df))
    if cfg.association and adjust_for is None:
        adjust_for = adjustment(inputs, cfg)
    table = table.with_columns(**association_columns(y, scores, stays, cfg, adjust_for))
    table = table.sort(chapter_rank(pl.col("chapter")), "phecode")
    table = table.select(pl.exclude("auc_ci_df", "_coefficients"), "auc_ci_df",
                         *(["_coefficients"] if "_coefficients" in table.columns else []))
    return table if coefficients else table.drop("_coefficients", strict=False)  # later columns come last


def adjustment(inputs: ReportInputs, cfg: ReportConfig):
    """The association test's shared design (:func:`~reports.adjustment.adjustment_design`): age, sex and
    ``cfg.covariates`` over the analysed stays. A covariate missing from ``stays.parquet`` is an
    :class:`InputError` naming the columns found."""
    stays = inputs.stays
    missing = [c for c in cfg.covariates if c not in stays.columns]
    if missing:
        found = [c for c in stays.columns if c not in ("stay_id", "patient_id", "split")]
        raise InputError(inputs.cohort / "stays.parquet",
                         f"no covariate column {', '.join(map(repr, missing))}; columns found: {', '.join(found)} "
                         "(`build-cohort --keep-columns` carries visits.csv columns into it)")
    columns = {c: stays[c].to_numpy() for c in cfg.covariates}
    return adjustment_design(stays["age"].to_numpy(), stays["sex"].to_numpy(), columns, age_df=cfg.age_df,
                  interaction=cfg.age_sex_interaction, splined=cfg.spline_covariates,
                  min_share=cfg.min_level_share)


def association_columns(y: np.ndarray, scores: np.ndarray, stays: pl.DataFrame, cfg: ReportConfig,
                        adjust_for) -> dict:
    """The association test's columns (:func:`~reports.association.associate_all` on the shared
    design ``adjust_for``, every phenotype at once) with BH q-values and Bonferroni flags; nulls
    when it is off."""
    if not cfg.association:
        return {**{c: pl.lit(None, pl.Float64) for c in ASSOC_COLUMNS}, "q_value": pl.lit(None, pl.Float64),
                "bonferroni": pl.lit(False), **{c: pl.lit(None, pl.Int64) for c in COUNT_COLUMNS}}
    # the test keeps each patient's latest stay; without arrival times, the file's last
    arrival = stays["arrival"].cast(pl.Int64).to_numpy() if "arrival" in stays.columns else np.arange(stays.height)
    rows = associate_all(y, scores, adjust_for, stays["sex"].to_numpy(), groups=stays["patient_id"].to_numpy(),
                         order=arrival, folds=cfg.folds, seed=cfg.seed, min_persons=cfg.min_positives,
                         workers=cfg.workers,
                         progress=lambda blocks, total: progress(blocks, total=total, desc="association",
                                                                unit="block"))
    assoc = {c: [r[c] for r in rows] for c in ASSOC_COLUMNS}
    q, bonf = adjust(np.array(assoc["p_value"], dtype=float), cfg.alpha)
    return {**{c: pl.Series(v, dtype=pl.Float64) for c, v in assoc.items()},
            "q_value": pl.Series(q), "bonferroni": pl.Series(bonf),
            **{c: pl.Series([r[c] for r in rows], dtype=pl.Int64) for c in COUNT_COLUMNS},
            "method": pl.Series([r["method"] for r in rows], dtype=pl.String),
            "converged": pl.Series([r["converged"] for r in rows], dtype=pl.Boolean),
            "note": pl.Series([r["note"] for r in rows], dtype=pl.String),
            "_coefficients": pl.Series([_finite_list(r.get("coefficients")) for r in rows],
                                       dtype=pl.List(pl.Float64))}


def _finite_list(values):
    return None if values is None else [float(v) if np.isfinite(v) else None for v in values]


def explorer_data(inputs: ReportInputs, table: pl.DataFrame, cfg: ReportConfig, adjust_for=None) -> dict:
    """The page's explorer data (:mod:`reports.explorer`): the table's columns, each phenotype's
    detail (ROC curve with its band, score distributions, counts by sex and age band) and the
    adjusted models' coefficients."""
    from .explorer import page_data, phenotype_data
    from .figures import significance_lines
    from .pages import report_page

    position = {c: j for j, c in enumerate(inputs.info["phecode"].to_list())}
    cols = np.array([position[c] for c in table["phecode"].to_list()], dtype=np.int64)
    significance = significance_lines(table["p_value"], table["q_value"], cfg.alpha) if cfg.association else []
    data = page_data(report_page(cfg.association), table, alpha=cfg.alpha, thresholds=list(cfg.thresholds),
                     adjusted_for=adjustment_label(cfg.covariates), significance=significance, models=["model"],
                     **phenotype_data(table, inputs.y[:, cols], [inputs.scores[:, cols]], inputs.stays))
    if cfg.association and "_coefficients" in table.columns and adjust_for is not None:
        data["coefficient_names"] = [*adjust_for.names, "ppg_score (per SD of its logit)"]
        data["coefficients"] = [None if v is None else [None if x is None else round(x, 4) for x in v]
                                for v in table["_coefficients"].to_list()]
    return data


def chapter_table(table: pl.DataFrame, thresholds) -> pl.DataFrame:
    """Per chapter: phenotypes, mean and median AUC, and counts at each AUC threshold."""
    return (table.group_by("chapter", maintain_order=True)
            .agg(pl.len().alias("n_phenotypes"), pl.col("auc").mean().alias("mean_auc"),
                 pl.col("auc").median().alias("median_auc"),
                 *[(pl.col("auc") >= t).sum().alias(f"n_auc_at_least_{t:g}") for t in thresholds]))


def summarise(table: pl.DataFrame, inputs: ReportInputs, n_not_trained: int, cfg: ReportConfig,
              adjust_for=None) -> dict:
    """``summary.json``'s content; ``adjust_for``: the association's design, whose covariates'
    coding it records."""
    auc_all = table["auc"].to_numpy()
    tested = cfg.association
    adjusted = tested and adjust_for is not None
    return {
        "split": cfg.split, "n_stays": inputs.stays.height, "min_positives": cfg.min_positives,
        "stays_without_windows_left_out": inputs.n_left_out,
        "n_not_trained": n_not_trained,
        "tests_by_method": dict(table.group_by("method").len().sort("method").iter_rows()) if tested else None,
        "tests_failed_p_set_to_1": int((~table["converged"] & (table["method"] != "none")).sum())
        if tested else None,
        "association_model": model_description(cfg.age_df, cfg.age_sex_interaction, cfg.covariates,
                                               cfg.spline_covariates) if tested else None,
        "covariates": adjust_for.coding if adjusted else None,
        "stays_without_covariates_left_out": int((~adjust_for.usable).sum()) if adjusted else None,
        "adjustment_notes": adjust_for.notes if adjusted else None,
        "n_phenotypes": table.height,
        "auc_at_least": {f"{t:g}": int((auc_all >= t).sum()) for t in cfg.thresholds},
        "mean_auc": float(np.mean(auc_all)), "median_auc": float(np.median(auc_all)),
        "n_fdr_significant": int((table["q_value"].fill_null(1.0) <= cfg.alpha).sum()),
        "n_bonferroni_significant": int(table["bonferroni"].sum()),
        "mean_auc_age_sex": float(np.nanmean(table["auc_age_sex"].to_numpy().astype(float))) if tested else None,
        "top": table.sort("auc", descending=True).head(10).select("phecode", "description", "auc").to_dicts(),
    }


def write_figures(table: pl.DataFrame, cfg: ReportConfig, out: Path) -> dict[str, str]:
    """The report's figures in ``out``; returns caption -> PNG file name."""
    figs = {"AUC by phecode": figures.manhattan_auc(table, cfg.thresholds, out)[0]}
    if cfg.association:
        adjusted_for = adjustment_label(cfg.covariates)
        figs[f"Association beyond {adjusted_for}"] = figures.manhattan_association(table, cfg.alpha, out,
                                                                                   adjusted_for)[0]
        if table["or_per_sd"].is_not_null().any():
            figs["Odds ratio against p (volcano)"] = figures.volcano(table, cfg.alpha, out, adjusted_for)[0]
            figs["Strongest associations"] = figures.forest(table, out)[0]
    figs["AUC by chapter"] = figures.chapter_distributions(table, cfg.thresholds, out)[0]
    figs["AUC histogram"] = figures.auc_histogram(table, cfg.thresholds, out)[0]
    figs["Top phenotypes"] = figures.top_phenotypes(table, out)[0]
    return figs


def make_report(cohort, predictions, out, config: ReportConfig | None = None, overwrite: bool = False) -> dict:
    """``phewas report``: compute the tables, figures and HTML page into ``out``. Returns
    ``summary.json``'s content."""
    cfg = config or ReportConfig()
    inputs = load_inputs(cohort, predictions, cfg.split, cfg.include_stays_without_windows)
    untrained = not_trained(cohort, inputs.info["phecode"], cfg.split, cfg.min_positives)
    adjust_for = adjustment(inputs, cfg) if cfg.association else None
    table = phenotype_table(inputs, cfg, adjust_for, coefficients=True)
    summary = summarise(table, inputs, untrained.height, cfg, adjust_for)
    explorer = explorer_data(inputs, table, cfg, adjust_for)
    table = table.drop("_coefficients", strict=False)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        table.write_parquet(tmp / "phenotypes.parquet")
        table.write_csv(tmp / "phenotypes.csv")
        chapter_table(table, cfg.thresholds).write_csv(tmp / "chapters.csv")
        untrained.write_csv(tmp / "not_trained.csv")
        write_json(tmp / "summary.json", summary)
        write_html(tmp, summary, table, write_figures(table, cfg, tmp), explorer)
        write_manifest(tmp, command="report",
                       inputs={"cohort": str(Path(cohort).resolve()),
                               "predictions": {"path": str(Path(predictions).resolve()),
                                               "sha256": file_sha256(predictions)}},
                       parameters={**asdict(cfg), "covariate_coding": summary["covariates"]},
                       counts={"phenotypes": table.height, "stays": inputs.stays.height})
    return summary


def heart_rate_report(cohort, run, split: str, min_positives: int) -> dict:
    """AUCs of heart rate alone per phecode, from a ``phewas features`` run's ``heart_rate.parquet``
    (no association tests: heart rate is not a model of the phenotype): ``RUN/heart_rate_report``.
    An AUC below 0.5 means a lower heart rate in cases."""
    cfg = ReportConfig(split=split, min_positives=min_positives, association=False)
    return make_report(cohort, Path(run) / "heart_rate.parquet", Path(run) / "heart_rate_report", cfg, overwrite=True)

