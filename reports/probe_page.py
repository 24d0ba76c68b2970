"""What ``probe`` writes: its tables, the paper's layout, figures and the page."""

from __future__ import annotations

import html as html_
from pathlib import Path

import polars as pl

from phewas.base.io import write_json

from . import figures
from .explorer import page_data
from .html import write_page
from .pages import probe_page
from .probe_metrics import HIGHER_IS_BETTER, MAIN_METRIC

PROTOCOL_TEXT = {
    "grouped": {"binary": "L2 logistic regression on standardised embeddings, C by the AUC of inner folds by "
                "subject", "regression": "ridge, alpha by the mean absolute error of inner folds by subject",
                "intervals": "by the evaluation: a bootstrap over test subjects (one split), a bootstrap of "
                "subjects with every probe refitted (repeated splits), Student's t over subjects' errors and a "
                "bootstrap over subjects of the pooled metrics (leave one subject out)"},
    "anyppg": {"binary": "StandardScaler + L2 logistic regression (lbfgs), C by GridSearchCV(cv=5, roc_auc) over "
               "rows", "regression": "StandardScaler + ridge, alpha by GridSearchCV(cv=5, MAE) over rows",
               "multiclass": "StandardScaler + random forest (random_state=42) by GridSearchCV(cv=5, accuracy)",
               "intervals": "percentile bootstrap over test rows, 500 rounds (the release's linear_prob.py)"},
}


def write_probe(out: Path, result: dict, summary: dict, names: list[str], paper: dict | None = None) -> None:
    """``probe.csv``, ``probe_folds.csv``, ``probe_pairs.csv``, ``summary.json``, ``paper_table.csv``
    (:func:`paper_table` of ``paper``, the pass by the paper's settings; none when None), a figure
    per task, the tasks-by-encoder figure and ``index.html`` into ``out``."""
    # an undefined figure (no interval below five test subjects, no AUC of one class) is empty
    table, tasks = _empty_nan(result["table"]), summary["tasks"]
    table.write_csv(out / "probe.csv")
    _empty_nan(result["folds"]).write_csv(out / "probe_folds.csv")
    _empty_nan(result["pairs"]).write_csv(out / "probe_pairs.csv")
    if paper is not None:
        paper_table(paper["table"], names, paper["pairs"]).write_csv(out / "paper_table.csv")
    write_json(out / "summary.json", summary)
    figs = {f"{t}": figures.probe_metric(table, t, out)[0] for t in tasks
            if table.filter((pl.col("task") == t) & pl.col("value").is_not_null()).height}
    heads = [("examples", summary["examples"]), ("subjects", summary["subjects"]),
             ("evaluation", summary["evaluation"]), ("encoders", len(names)), ("tasks", len(tasks))]
    st = summary["settings"]
    intervals = sorted(set(table["interval"].drop_nulls().to_list()))
    intro = (f"Dataset <code>{html_.escape(summary['dataset'])}</code>; {html_.escape(summary['split'])}. Frozen "
             f"encoders; preprocessing <code>{st['preprocess']}</code>, input <code>{st['input']}</code>, protocol "
             f"<code>{st['protocol']}</code> (L2 logistic regression, random forest, ridge; hyperparameters chosen "
             f"on the training part by inner folds); 95% intervals: {html_.escape('; '.join(intervals) or 'none')}; "
             "<code>constant</code> predicts the training mean or prevalence.")
    own = paper_table(table, names, result["pairs"])
    if own.height:
        figs["Tasks by encoder"] = figures.probe_comparison(table, names, out)[0]
    extra = ("<h2>Tasks by encoder</h2><p>Each task's main metric (AUC for classification, mean absolute "
             "error for regression) with its 95% interval, by this run's settings; the best per task in bold, "
             "and <i>in italics</i> the encoders whose paired difference from the best has an interval that "
             "includes 0 (<code>probe_pairs.csv</code>).</p>" + paper_html(own))
    released = summary.get("paper_table")
    if paper is not None and released and {k: released[k] for k in st} != st:
        extra += (f"<h2>The paper's table</h2><p>The same encoders by the release's settings (input "
                  f"<code>{released['input']}</code>, protocol <code>{released['protocol']}</code>, "
                  f"{html_.escape(released['split'])}), as <code>paper_table.csv</code> holds them.</p>"
                  + paper_html(paper_table(paper["table"], names, paper["pairs"])))
    spec = probe_page()
    explorer = page_data(spec, table, encoders=list(names),
                         main_metrics=[m for m in ("auc", "mae", "pearson_r")
                                       if m in set(table["metric"].drop_nulls().to_list())])
    write_page(out, title="phewas probe", heading="What do the encoders' embeddings know?", intro=intro,
               heads=heads, figures=figs, table=table.select(spec.table),
               table_title="Tasks, metrics, encoders", explorer=explorer, extra=extra)


def _empty_nan(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Float64).fill_nan(None))


def paper_table(table: pl.DataFrame, names: list[str], pairs: pl.DataFrame | None = None) -> pl.DataFrame:
    """The AnyPPG paper's layout: one row per task, one column per encoder holding the task's main
    metric (:data:`~reports.probe_metrics.MAIN_METRIC`) as ``value [low, high]``, ``best``, the
    encoder with the best value (highest AUC, lowest error; tied encoders joined by " = "), and
    ``not_distinguished``: the encoders whose paired difference from the best has an interval
    including 0 (from ``pairs``, ``probe_pairs.csv``'s rows)."""
    rows = []
    for task in dict.fromkeys(table["task"].to_list()):
        sub = table.filter(pl.col("task") == task)
        metric = MAIN_METRIC.get(sub["kind"][0])
        cells = {r["encoder"]: r for r in sub.filter(pl.col("metric") == metric).iter_rows(named=True)
                 if r["value"] is not None and r["value"] == r["value"]}
        if not cells:
            continue
        pick = max if HIGHER_IS_BETTER[metric] else min
        top = pick(r["value"] for r in cells.values())
        best = [e for e in names if e in cells and cells[e]["value"] == top]  # ties share it
        close = []
        if pairs is not None and pairs.height:
            for r in pairs.filter((pl.col("task") == task) & pl.col("includes_zero").fill_null(False)) \
                    .iter_rows(named=True):
                other = r["encoder_b"] if r["encoder_a"] in best else r["encoder_a"] if r["encoder_b"] in best \
                    else None
                if other is not None and other not in best and other not in close:
                    close.append(other)
        row = {"task": task, "metric": metric, "best": " = ".join(best),
               "not_distinguished": " ".join(e for e in names if e in close) or None}
        for name in names:
            r = cells.get(name)
            row[name] = None if r is None else (f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                                                if r["ci_low"] is not None and r["ci_low"] == r["ci_low"]
                                                else f"{r['value']:.3f}")
        rows.append(row)
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def paper_html(paper: pl.DataFrame) -> str:
    """:func:`paper_table` as an HTML table: the best per row in bold, those not distinguished
    from it in italics."""
    if not paper.height:
        return ""
    encoders = [c for c in paper.columns if c not in ("task", "metric", "best", "not_distinguished")]
    head = "".join(f"<th>{html_.escape(e)}</th>" for e in ["task", "metric", *encoders])
    body = ""
    for r in paper.iter_rows(named=True):
        best, close = r["best"].split(" = "), (r.get("not_distinguished") or "").split()
        cells = ""
        for e in encoders:
            text = html_.escape(r[e] or "")
            cells += f"<td><b>{text}</b></td>" if e in best else f"<td><i>{text}</i></td>" if e in close else \
                f"<td>{text}</td>"
        body += f"<tr><td>{html_.escape(r['task'])}</td><td>{r['metric']}</td>{cells}</tr>"
    return f'<table class="paper"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
