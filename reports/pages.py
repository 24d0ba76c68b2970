"""One spec per page kind: what its sortable table and its explorer show (columns, search, filters,
hover text, figures, detail panels), shipped to the page as data so that the explorer's script
dispatches on the spec, never on the page's kind.

A new per-phenotype statistic is its computation plus entries here (a table column, an explorer
column, a hover line); a new interactive figure is a named builder in ``explorer-figures.js`` plus
its name in a spec's ``figures``; a new detail panel likewise in ``explorer-detail.js``.

Hover lines are templates: ``{column}`` is the row's value as it is, ``{column:f}`` a number
formatted to three decimals; a line with a condition is shown where that column is not null.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Filter:
    """A check box of the explorer: the rows whose ``column`` equals ``equals``, or (without
    ``equals``) is at most the page's level ``alpha``."""

    name: str
    label: str
    column: str
    equals: str | None = None


@dataclass(frozen=True)
class PageSpec:
    """What one kind of page shows.

    ``table``: the sortable table's columns (those the table has); ``columns``: the explorer's data
    columns; ``search``: the columns the search box looks in; ``key``: the column that names a
    row's detail view in the page's address; ``noun``: what a row is; ``auc``: the AUC-at-least
    filter keeps rows where the largest of these columns reaches it (none: no such filter);
    ``hover``: ``(template, condition)`` lines; ``figures`` and ``detail``: the explorer's figure
    builders and detail panels, in order.
    """

    kind: str
    table: tuple[str, ...]
    columns: tuple[str, ...]
    search: tuple[str, ...]
    key: str
    noun: str
    filters: tuple[Filter, ...] = ()
    auc: tuple[str, ...] = ()
    hover: tuple[tuple[str, str | None], ...] = ()
    figures: tuple[str, ...] = ()
    detail: tuple[str, ...] = ()

    def script_data(self) -> dict:
        """The spec as the explorer's script reads it (``D.page``)."""
        out = asdict(self)
        del out["table"], out["columns"]
        return out


PHENOTYPE = ("phecode", "description", "chapter")
ASSOCIATION_COLUMNS = ("p_value", "q_value", "or_per_sd", "or_ci_low", "or_ci_high", "method", "note",
                       "n_pos_patients", "n_neg_patients")
PHENOTYPE_HOVER = (("<b>{phecode}</b> {description}<br>{chapter}<br>", None),)


def report_page(association: bool = True) -> PageSpec:
    """The report's page; without ``association`` (AUCs only, as the heart-rate report) no
    association columns, figures or coefficients (its filters stay, and keep no row)."""
    hover = (*PHENOTYPE_HOVER, ("AUC {auc:f} [{auc_ci_low:f}, {auc_ci_high:f}]<br>", None))
    if association:
        hover += (("OR per SD {or_per_sd:f}<br>", "or_per_sd"), ("p {p_value:f}, q {q_value:f}<br>", "p_value"))
    hover += (("cases {n_pos}, controls {n_neg}", None),)
    return PageSpec(
        kind="report",
        table=(*PHENOTYPE, "n_pos", "n_neg", "auc", "auc_ci_low", "auc_ci_high", "auc_age_sex", "auc_age_sex_ppg",
               "or_per_sd", "p_value", "q_value", "bonferroni"),
        columns=(*PHENOTYPE, "n_pos", "n_neg", "auc", "auc_ci_low", "auc_ci_high",
                 *(ASSOCIATION_COLUMNS if association else ())),
        search=PHENOTYPE, key="phecode", noun="phenotypes",
        filters=(Filter("sig", "significant beyond the adjustment (FDR)", "q_value"),
                 Filter("firth", "tested with Firth", "method", "firth"),
                 Filter("untested", "not tested", "method", "none")),  # without tests: no row is any
        auc=("auc",), hover=hover,
        figures=("auc_by_phecode", *(("association", "volcano", "forest") if association else ())),
        detail=("heading", "summary", "note", "curves", "counts", *(("coefficients",) if association else ())))


def compare_page() -> PageSpec:
    """The comparison's page: a row per phenotype and pair of models."""
    return PageSpec(
        kind="compare",
        table=(*PHENOTYPE, "model_a", "model_b", "n_pos", "auc_a", "auc_b", "auc_diff", "diff_ci_low",
               "diff_ci_high", "p_value", "q_value", "better"),
        columns=(*PHENOTYPE, "model_a", "model_b", "n_pos", "auc_a", "auc_a_ci_low", "auc_a_ci_high", "auc_b",
                 "auc_b_ci_low", "auc_b_ci_high", "auc_diff", "diff_ci_low", "diff_ci_high", "p_value", "q_value",
                 "better"),
        search=PHENOTYPE, key="phecode", noun="phenotype-pair rows",
        filters=(Filter("sig", "significantly different (FDR)", "q_value"),),
        auc=("auc_a", "auc_b"),
        hover=(*PHENOTYPE_HOVER,
               ("{model_a} {auc_a:f} [{auc_a_ci_low:f}, {auc_a_ci_high:f}]<br>", None),
               ("{model_b} {auc_b:f} [{auc_b_ci_low:f}, {auc_b_ci_high:f}]<br>", None),
               ("difference {auc_diff:f} [{diff_ci_low:f}, {diff_ci_high:f}]<br>", None),
               ("p {p_value:f}, q {q_value:f}<br>", "p_value"), ("cases {n_pos}", None)),
        figures=("pairs",), detail=("heading", "pair_rows", "curves", "counts"))


def probe_page() -> PageSpec:
    """The probe's page: a row per task, encoder and metric."""
    return PageSpec(
        kind="probe",
        table=("encoder", "task", "kind", "evaluation", "metric", "value", "ci_low", "ci_high", "interval", "n_train",
               "n_test", "n_subjects", "penalty"),
        columns=("task", "kind", "encoder", "metric", "value", "ci_low", "ci_high", "n_test", "hyperparameters"),
        search=("task", "encoder", "metric"), key="task", noun="rows",
        hover=(("{task} · {encoder}<br>{metric} {value:f} [{ci_low:f}, {ci_high:f}]<br>n test {n_test}", None),),
        figures=("metric_by_task",), detail=("task_rows",))
