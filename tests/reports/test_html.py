"""reports.html: the page's table escapes text and formats numbers (NaN empty, small values in
exponent form), rows carry their index for the explorer, figures are embedded, and a page
without explorer data has no explorer."""

import math

import polars as pl

from reports.html import write_page


def _page(tmp_path, explorer=None, figures=None):
    table = pl.DataFrame({"phecode": ["401.1", "<b>x</b>"], "auc": [0.81234, math.nan], "p": [1e-5, 0.5]})
    write_page(tmp_path, title="t & t", heading="H", intro="intro", heads=[("n", 2)], figures=figures or {},
               table=table, table_title="Rows", explorer=explorer)
    return (tmp_path / "index.html").read_text()


def test_the_table_escapes_text_and_formats_numbers(tmp_path):
    page = _page(tmp_path)
    assert "<title>t &amp; t</title>" in page
    assert '<tr data-row="0"><td>401.1</td><td>0.812</td><td>1.00e-05</td></tr>' in page
    assert '<tr data-row="1"><td>&lt;b&gt;x&lt;/b&gt;</td><td></td><td>0.500</td></tr>' in page
    assert 'id="explorer"' not in page and "a row for its detail" not in page


def test_figures_are_embedded_and_an_explorer_goes_with_its_data(tmp_path):
    from reports.explorer import page_data
    from reports.pages import probe_page

    (tmp_path / "f.png").write_bytes(b"\x89PNG fake")
    rows = pl.DataFrame({"task": ["hr"], "kind": ["regression"], "encoder": ["random"], "metric": ["mae"],
                         "value": [3.0], "ci_low": [None], "ci_high": [None], "n_test": [10],
                         "hyperparameters": ["{}"]})
    page = _page(tmp_path, explorer=page_data(probe_page(), rows, encoders=["random"], main_metrics=["mae"]),
                 figures={"A figure": "f.png"})
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in page
    assert 'id="explorer"' in page and 'placeholder="search task, encoder, metric"' in page
    assert "<summary>Figures for papers" in page  # the static figures fold away beside an explorer
