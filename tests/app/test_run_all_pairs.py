"""``run-all``'s ``[pairs.NAME]`` tables: each source becomes a stage that writes a pair store, and
pretraining reads the stores with the cohort's pairs; bad tables are one-line errors."""

from __future__ import annotations

import pytest

from phewas.base.errors import InputError
from phewas.study import load_config, plan

TOML = """
[paths]
data = "data"
work = "work"
[pretrain]
preset = "demo"
steps = 3
[pairs.mesa]
format = "mesa"
source = "sources/mesa"
workers = 1
[pairs.pulsedb]
format = "pulsedb"
source = "/abs/pulsedb"
preprocess = "robust"
"""


def test_each_source_is_a_stage_that_pretraining_reads(tmp_path):
    (tmp_path / "study.toml").write_text(TOML)
    the_plan = plan(load_config(tmp_path / "study.toml"), tmp_path / "study.toml")
    names = [s.name for s in the_plan.stages]
    assert names.index("pairs:mesa") < names.index("pretrain") and "pairs:pulsedb" in names
    mesa = the_plan.stages[names.index("pairs:mesa")]
    assert mesa.writes == tmp_path / "work" / "pairs" / "mesa" / "manifest.json"
    assert mesa.params["source"] == str(tmp_path / "sources" / "mesa") and mesa.params["format"] == "mesa"
    assert the_plan.stages[names.index("pairs:pulsedb")].params["preprocess"] == "robust"
    pre = the_plan.stages[names.index("pretrain")]
    assert set(pre.reads) == {"extract_segments", "pairs:mesa", "pairs:pulsedb"}
    assert pre.params["pairs"] == [str(tmp_path / "work" / "pairs" / n) for n in ("mesa", "pulsedb")]


@pytest.mark.parametrize("table, needle", [
    ('[pairs.mesa]\nsource = "x"\n', "[pairs.mesa] needs 'format'"),
    ('[pairs.mesa]\nformat = "edf"\nsource = "x"\n', "format 'edf': one of pulsedb, mesa, cfs, hsp"),
    ('[pairs.mesa]\nformat = "mesa"\nsource = "x"\nchanels = "release"\n', "unknown key 'chanels'"),
    ('[pairs]\nmesa = 3\n', "[pairs.mesa] must be a table"),
    ('[pairs."m s"]\nformat = "mesa"\nsource = "x"\n', "[pairs.m s]: a source name is letters, digits, _ . + -"),
    ('[models.finetune]\nkind = "features"\n', "a model name is letters, digits, _ . + - and not 'finetune'"),
    ('[models]\npulse = 3\n', "[models.pulse] must be a table"),
])
def test_bad_pairs_tables(tmp_path, table, needle):
    (tmp_path / "study.toml").write_text('[paths]\ndata = "d"\nwork = "w"\n' + table)
    with pytest.raises(InputError, match=None) as err:
        load_config(tmp_path / "study.toml")
    assert needle in str(err.value) and "study.toml" in str(err.value)
