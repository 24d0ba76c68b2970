"""The pages' explorer: plotly's interactive figures, a search box and filters over the table, and a
detail view per phenotype, all from data embedded once in the self-contained page.

The figures are drawn by plotly.js from its own offline bundle (the ``plotly`` package's, embedded
in the page: no network); the scripts in ``explorer_js/`` beside this module only build their
traces from the data and wire the search, the filters and the detail view, as the page's spec
(:mod:`reports.pages`, shipped with the data) names them. The page's state lives in its address
(``#search=heart&sig=1&detail=428.1``), so a view can be shared and reopened.

Per phenotype the detail view shows the ROC curve on a fixed grid of false-positive rates with a
pointwise 95% band for the true-positive rate (Wilson's interval on the effective number of case
patients: the clustered stays of one patient count as fewer than their number; the band ignores the
uncertainty of the false-positive rate), the score distributions of cases and controls, the counts
by sex and age band, and the adjusted model's coefficients.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from .figures import chapter_colour

# false-positive rates at which ROC curves are kept: dense where curves rise fastest
FPR_GRID = np.unique(np.r_[np.linspace(0, 0.02, 5), np.linspace(0.02, 0.2, 19), np.linspace(0.2, 1, 33)])
AGE_BANDS = (18, 40, 60, 80)  # lower edges: 18-39, 40-59, 60-79, 80+
SEXES = ("F", "M")
HIST_BINS = 24
SCRIPTS = ("base.js", "figures.js", "detail.js", "main.js")  # explorer_js/, in this order
Z95 = 1.959964


def roc_on_grid(score: np.ndarray, positive: np.ndarray, grid: np.ndarray = FPR_GRID) -> np.ndarray:
    """The empirical ROC curve's true-positive rate at each false-positive rate of ``grid``: the
    highest reached without exceeding it, over the curve's points at each distinct score (ties
    move both rates together, as ``sklearn.metrics.roc_curve``'s points do)."""
    order = np.argsort(-score)  # the order within a tie group does not matter: only its end is a point
    s, pos = score[order], positive[order]
    tp, fp = np.cumsum(pos), np.cumsum(~pos)
    last = np.r_[s[1:] != s[:-1], True]  # the end of each tie group: a point of the curve
    n_pos, n_neg = max(int(tp[-1]) if len(tp) else 0, 1), max(int(fp[-1]) if len(fp) else 0, 1)
    tpr, fpr = np.r_[0.0, tp[last] / n_pos], np.r_[0.0, fp[last] / n_neg]
    return np.maximum.accumulate(tpr)[np.searchsorted(fpr, grid, side="right") - 1]


def wilson(p: np.ndarray, n: float, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval of proportions ``p`` observed on ``n`` units."""
    if not n or not np.isfinite(n) or n <= 0:
        return np.zeros_like(p), np.ones_like(p)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _thousandths(x) -> list[int]:
    return np.rint(np.asarray(x, np.float64) * 1000).astype(int).tolist()


def _numbers(values, digits: int = 4) -> list:
    """JSON numbers (NaN and None as null), rounded."""
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            out.append(None)
        elif isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, (int, np.integer)):
            out.append(int(v))
        else:
            out.append(float(f"{float(v):.{digits}g}"))
    return out


def phenotype_details(y: np.ndarray, scores: list[np.ndarray], age: np.ndarray, sex: np.ndarray,
                      case_units: np.ndarray) -> dict:
    """The detail view's data per column of ``y`` (1 case, 0 control, else left out), for one or
    more models' ``scores`` on the same stays: each model's ROC curve on :data:`FPR_GRID` in
    thousandths with its band (``case_units``: the effective number of case patients per column),
    the first model's score histograms on the logit scale, and ``counts[column][sex][band]``:
    ``[cases, controls]`` by sex (:data:`SEXES`) and age band (:data:`AGE_BANDS`)."""
    band = np.searchsorted(np.asarray(AGE_BANDS[1:]), np.asarray(age, np.float64), side="right")
    sex = np.asarray(sex)
    cells = np.column_stack([(sex == s_) & (band == b) for s_ in SEXES for b in range(len(AGE_BANDS))])
    cases = cells.T.astype(np.float64) @ (y == 1).astype(np.float64)  # cells x columns
    controls = cells.T.astype(np.float64) @ (y == 0).astype(np.float64)
    counts = np.stack([cases, controls], axis=-1).astype(int)  # cells x columns x (cases, controls)
    counts = counts.transpose(1, 0, 2).reshape(y.shape[1], len(SEXES), len(AGE_BANDS), 2)
    out = {"tpr": [[] for _ in scores], "tpr_low": [[] for _ in scores], "tpr_high": [[] for _ in scores],
           "hist_edges": [], "hist_cases": [], "hist_controls": [], "counts": counts.tolist()}
    for j in range(y.shape[1]):
        use = (y[:, j] == 1) | (y[:, j] == 0)
        positive = y[use, j] == 1
        for m, s in enumerate(scores):
            tpr = roc_on_grid(s[use, j], positive)
            lo, hi = wilson(tpr, float(case_units[j]))
            out["tpr"][m].append(_thousandths(tpr))
            out["tpr_low"][m].append(_thousandths(lo))
            out["tpr_high"][m].append(_thousandths(hi))
        x = _logit(scores[0][use, j])
        lo, hi = np.quantile(x, [0.005, 0.995]) if len(x) else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, HIST_BINS + 1)
        clipped = np.clip(x, edges[0], edges[-1])
        out["hist_edges"].append([round(float(edges[0]), 4), round(float(edges[-1]), 4)])
        out["hist_cases"].append(np.histogram(clipped[positive], edges)[0].tolist())
        out["hist_controls"].append(np.histogram(clipped[~positive], edges)[0].tolist())
    return out


def effective_case_patients(y: np.ndarray, patient: np.ndarray) -> np.ndarray:
    """Per column of ``y``: Kish's effective number of case patients from their case stays,
    ``(sum m_i)^2 / sum m_i^2`` (``m_i``: patient ``i``'s case stays)."""
    from scipy import sparse

    g = np.unique(np.asarray(patient), return_inverse=True)[1]
    G = sparse.csr_matrix((np.ones(len(g)), (g, np.arange(len(g)))), shape=(g.max() + 1 if len(g) else 0, len(g)))
    m = G @ (np.asarray(y) == 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(m.sum(0) ** 2 / (m ** 2).sum(0))


def table_columns(table: pl.DataFrame, names) -> dict:
    """The columns ``names`` of ``table`` that it has, as JSON lists (text as text, numbers rounded,
    NaN as null)."""
    out = {}
    for name in names:
        if name not in table.columns:
            continue
        series = table[name]
        if series.dtype == pl.String:
            out[name] = ["" if v is None else v for v in series.to_list()]
        else:
            out[name] = _numbers(series.to_list())
    return out


def phenotype_data(table: pl.DataFrame, y: np.ndarray, scores: list[np.ndarray], stays: pl.DataFrame) -> dict:
    """What every phenotype page's explorer needs beside its rows: the chapters (in the table's
    order) with their colours, the ROC grid, the sexes and age bands, and
    :func:`phenotype_details` of ``y``'s columns."""
    chapters = table["chapter"].to_list()
    return {"chapters": list(dict.fromkeys(chapters)), "colours": chapter_colours(chapters),
            "fpr": [round(float(f), 4) for f in FPR_GRID], "sexes": list(SEXES), "age_bands": age_band_labels(),
            "details": phenotype_details(y, scores, stays["age"].to_numpy(), stays["sex"].to_numpy(),
                                         effective_case_patients(y, stays["patient_id"].to_numpy()))}


def chapter_colours(chapters) -> dict[str, str]:
    """Chapter -> the static figures' colour, as CSS."""
    out = {}
    for c in dict.fromkeys(chapters):
        r, g, b = chapter_colour(c)[:3]
        out[c] = f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})"
    return out


def age_band_labels() -> list[str]:
    edges = list(AGE_BANDS)
    return [f"{a}-{b - 1}" for a, b in zip(edges, edges[1:])] + [f"{edges[-1]}+"]


@lru_cache(maxsize=1)
def _plotly_bundle() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _asset(name: str) -> str:
    return (Path(__file__).parent / name).read_text()


def page_data(spec, table: pl.DataFrame, **data) -> dict:
    """The explorer's data: ``spec``'s columns that ``table`` has, the spec itself (``page``) and
    ``data`` (the figures' and detail panels' own data)."""
    return {"page": spec.script_data(), "columns": table_columns(table, spec.columns), **data}


def explorer_html(data: dict) -> str:
    """The explorer's markup: controls (the search box, the page spec's filters), figure and
    detail containers, plotly's bundle, the data (JSON, ``</`` escaped) and the scripts."""
    page = data["page"]
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    boxes = "".join(f'<label><input type="checkbox" id="filter-{f["name"]}"> {html.escape(f["label"])}</label>'
                    for f in page["filters"])
    at_least = ('<label>AUC at least <input type="number" id="filter-auc" min="0" max="1" step="0.01" '
                'style="width:5em"></label>') if page["auc"] else ""
    scripts = "\n".join(_asset(f"explorer_js/{name}") for name in SCRIPTS)
    return f"""<section id="explorer">
<div class="controls"><input type="search" id="search" placeholder="search {html.escape(', '.join(page['search']))}" \
size="40"> {boxes} {at_least}
<span id="shown"></span></div>
<div id="plots"></div>
<div id="detail" hidden><div class="detail-box"><button id="detail-close" aria-label="close">&times;</button>
<div id="detail-body"></div></div></div>
</section>
<style>{_asset("explorer.css")}</style>
<script>{_plotly_bundle()}</script>
<script type="application/json" id="explorer-data">{payload}</script>
<script>{scripts}</script>"""
