"""``index.html``: one self-contained page (images and the explorer embedded) with a sortable
table."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import polars as pl

from .pages import report_page

_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = Array.from(body.rows);
  const asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
  const key = r => { const t = r.cells[i].textContent; const v = parseFloat(t); return isNaN(v) ? t : v; };
  rows.sort((a, b) => { const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1); });
  rows.forEach(r => body.appendChild(r));
}));
"""
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}img{max-width:100%}
table{border-collapse:collapse;font-size:12px}td,th{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}td:nth-child(2),td:nth-child(3){text-align:left}
.headline{display:flex;gap:2em;flex-wrap:wrap}.headline div{background:#f4f4f4;padding:.6em 1em;border-radius:6px}
.headline b{display:block;font-size:1.6em}
table.paper td,table.paper th{text-align:left;padding:3px 10px}"""

def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if v != v else (f"{v:.2e}" if 0 < abs(v) < 1e-3 else f"{v:.3f}")
    return html.escape(str(v))


def write_page(out: Path, *, title: str, heading: str, intro: str, heads: list[tuple[str, object]],
               figures: dict[str, str], table: pl.DataFrame, table_title: str, explorer: dict | None = None,
               extra: str = "") -> None:
    """Write ``out/index.html``: a heading, an introduction (HTML), headline numbers, the
    interactive explorer of ``explorer``'s data (:func:`reports.explorer.explorer_html`; its rows
    are ``table``'s), the static figures (caption -> PNG file name in ``out``) and a sortable table
    of ``table``'s columns, whose rows open their detail view. ``extra``: HTML placed after the
    headline numbers."""
    from .explorer import explorer_html

    rows = "\n".join(f'<tr data-row="{i}">' + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>"
                     for i, r in enumerate(table.iter_rows()))
    interactive = explorer_html(explorer) if explorer is not None else ""
    statics = "".join(f"<h3>{html.escape(c)}</h3>" + _img(out / f, c) for c, f in figures.items())
    if figures and interactive:
        statics = ("<details><summary>Figures for papers (PNG at 300 dpi and SVG beside this page)</summary>"
                   f"{statics}</details>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(heading)}</h1>
<p>{intro}</p>
<div class="headline">{''.join(f'<div><b>{v}</b>{k}</div>' for k, v in heads)}</div>
{extra}
{interactive}
{statics}
<h2>{html.escape(table_title)}</h2><p>Click a column to sort{", a row for its detail" if interactive else ""}.</p>
<table class="sortable"><thead><tr>{''.join(f'<th>{html.escape(c)}</th>' for c in table.columns)}</tr></thead>
<tbody>{rows}</tbody></table>
<script>{_SORT_JS}</script></body></html>"""
    (out / "index.html").write_text(page)


def write_html(out: Path, summary: dict, phenotypes: pl.DataFrame, figures: dict[str, str],
               explorer: dict | None = None) -> None:
    """The report's ``out/index.html``; ``figures`` maps a caption to a PNG file name in ``out``;
    ``explorer``: the interactive explorer's data (:func:`reports.report.explorer_data`)."""
    at = summary["auc_at_least"]
    covariates = list(summary.get("covariates") or {})
    beyond = "age+sex" + "".join(f"+{c}" for c in covariates)
    heads = [("phenotypes", summary["n_phenotypes"])] + [(f"AUC &ge; {k}", v) for k, v in at.items()] + [
        (f"significant beyond {html.escape(beyond)} (FDR)", summary["n_fdr_significant"]),
        ("mean AUC", f"{summary['mean_auc']:.3f}")]
    adjusted = "age and sex" if not covariates else \
        "age, sex and " + ", ".join(f"<code>{html.escape(c)}</code>" for c in covariates)
    intro = (f"Split <code>{html.escape(summary['split'])}</code>: {summary['n_stays']} stays; phenotypes with "
             f"at least {summary['min_positives']} positive and {summary['min_positives']} control stays. AUC "
             "with 95% patient-clustered DeLong intervals; association: likelihood-ratio test of the PPG score "
             f"added to {adjusted}.")
    if summary.get("association_model"):
        intro += f" Model: <code>{html.escape(summary['association_model'])}</code>."
    for note in summary.get("adjustment_notes") or []:
        intro += f" {html.escape(note)}."
    write_page(out, title="phewas report", heading="Which diseases does PPG detect?", intro=intro, heads=heads,
               figures=figures, table=phenotypes.select([c for c in report_page().table if c in phenotypes.columns]),
               table_title="Phenotypes", explorer=explorer)
