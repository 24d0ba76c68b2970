"""Labels against a slow, obvious per-patient implementation of R PheWAS' rules.

The reference (``tests/reference_labels.py``) reads the phecode 1.2 CSV with the ``csv`` module
and loops over each stay's patient's rows in plain Python: it shares no code with ``cohorts.labels``.
"""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from reference_labels import T0, frames, label_stays, random_rows, slow_labels

from cohorts.labels import resolve_codes, unmapped_codes, visit_codes
from cohorts.phecodes import load_phecode_map

PMAP = load_phecode_map()
COL = {p: i for i, p in enumerate(PMAP.codes)}
DAY = dt.timedelta(days=1)


# ---------------------------------------------------------------- helpers for the fast path
def fast_labels(stays, visits_dx, history, **kw):
    st, hist = frames(stays, visits_dx, history)
    lab, info = label_stays(st, visit_codes(st), hist, PMAP, **kw)
    return {s: {p: int(lab[i, COL[p]]) for p in COL} for i, s in enumerate(st["stay_id"])}, info


def both(stays, visits_dx, history, source="visit", min_count=1, exclusions=True):
    fast, info = fast_labels(stays, visits_dx, history, source=source, min_code_count=min_count,
                             exclusions=exclusions)
    assert fast == slow_labels(stays, visits_dx, history, source, min_count, exclusions)
    return fast, info


# ---------------------------------------------------------------- hand-made cases
def test_dual_coded_visit_is_one_date():
    # 786.50 (ICD-9) and R07.9 (ICD-10) on one visit both map to 418: one date, not two
    lab, _ = both([("a", "1", "M", T0)], [("a", "9", "786.50"), ("a", "10", "R07.9")], [], min_count=2)
    assert lab["a"]["418"] == -1
    lab, _ = both([("a", "1", "M", T0)], [("a", "9", "786.50"), ("a", "10", "R07.9")], [], min_count=1)
    assert lab["a"]["418"] == 1


def test_same_day_visits_are_one_date_and_days_not_timestamps():
    stays = [("a", "1", "F", T0), ("b", "1", "F", T0 + dt.timedelta(hours=6)),
             ("c", "1", "F", T0 + 3 * DAY)]
    dx = [("a", "10", "I10"), ("b", "10", "I10"), ("c", "10", "R07.9")]
    lab, _ = both(stays, dx, [], min_count=2)
    assert lab["a"]["401.1"] == -1 and lab["b"]["401.1"] == -1  # one calendar day
    assert lab["c"]["401.1"] == -1
    lab, _ = both(stays, dx + [("c", "10", "I10")], [], min_count=2)
    assert lab["c"]["401.1"] == 1 and lab["b"]["401.1"] == -1  # a second day, later
    # a history row noted on the day of a visit is the same day as that visit
    lab, _ = both(stays[:1], dx[:1], [("1", "10", "I10", dt.datetime(2262, 6, 1))], min_count=2)
    assert lab["a"]["401.1"] == -1


def test_earlier_visit_diagnoses_carry_forward_later_ones_do_not():
    stays = [("v1", "1", "M", T0), ("v2", "1", "M", T0 + 40 * DAY)]
    lab, _ = both(stays, [("v1", "10", "I48.91"), ("v2", "10", "R07.9")], [])
    assert lab["v1"]["427.21"] == 1 and lab["v2"]["427.21"] == 1  # has had AF by visit 2
    assert lab["v1"]["418"] == 0 and lab["v2"]["418"] == 1  # chest pain only from visit 2 on
    lab, _ = both(stays, [("v1", "10", "I48.91"), ("v2", "10", "R07.9")], [], source="all")
    assert lab["v1"]["418"] == 1  # every code of the patient


def test_history_counts_by_day_up_to_the_stay():
    stays = [("early", "1", "F", T0), ("late", "1", "F", T0 + 100 * DAY)]
    hist = [("1", "10", "E11.9", T0 + 50 * DAY), ("1", "10", "J45.909", T0.replace(hour=23))]
    lab, _ = both(stays, [("early", "10", "R07.9")], hist)
    assert lab["early"]["250.2"] == 0 and lab["late"]["250.2"] == 1
    assert lab["early"]["495"] == 1  # noted later on the arrival's own day: that day counts


def test_undated_history_is_null_not_control_and_counted():
    stays = [("a", "1", "M", T0), ("b", "2", "M", T0)]
    hist = [("1", "10", "I10", None)]
    lab, info = both(stays, [("a", "10", "R07.9"), ("b", "10", "R07.9")], hist)
    assert lab["a"]["401.1"] == -1 and lab["a"]["401"] == -1  # rolled up too
    assert lab["b"]["401.1"] == 0
    # 401.1, 401 and every phecode whose exclusion range holds them
    assert info["undated_cells_nulled"] >= 2
    # an undated code never makes a case, even beside a dated one on one day only
    lab, _ = both(stays[:1], [("a", "10", "I10")], hist, min_count=2)
    assert lab["a"]["401.1"] == -1
    # --codes all: one more (unknown) date
    lab, _ = both(stays[:1], [("a", "10", "I10")], hist, source="all", min_count=2)
    assert lab["a"]["401.1"] == 1


def test_exact_spelling_first_then_case_insensitive():
    stays = [("up", "1", "M", T0), ("low", "2", "M", T0), ("mixed", "3", "M", T0), ("lo_only", "4", "M", T0)]
    dx = [("up", "10", "T45.0X1"), ("low", "10", "T45.0x1"), ("mixed", "10", "t45.0X1"),
          ("lo_only", "10", "H21.1X1")]
    lab, _ = both(stays, dx, [], exclusions=False)  # 979's exclusion range holds 963
    assert lab["up"]["963"] == 1 and lab["up"]["979"] == 0  # never the union of both spellings
    assert lab["low"]["963"] == 1 and lab["low"]["979"] == 1  # the map's own row for 'x'
    assert lab["mixed"]["963"] == 1 and lab["mixed"]["979"] == 0  # folded: the upper-case spelling
    assert lab["lo_only"]["379.5"] == 1  # the map has only 'H21.1x1'; records are upper case


def test_system_from_the_column_and_multi_code_cells():
    stays = [("a", "1", "M", T0), ("b", "2", "F", T0)]
    lab, _ = both(stays, [("a", "10", "i48.91, R07.9"), ("b", "9", "v45.81")], [])
    assert lab["a"]["427.21"] == 1 and lab["a"]["418"] == 1
    v4581 = PMAP.icd.filter((pl.col("system") == "9") & (pl.col("code") == "V4581"))["phecode"].to_list()
    assert v4581 and all(lab["b"][p] == 1 for p in v4581)


def test_exclusion_range_and_sex_rules():
    assert "427.21" in PMAP.phecodes.filter(pl.col("phecode") == "427.22")["exclude_range"][0]
    stays = [("a", "1", "M", T0), ("b", "2", "M", T0), ("f", "3", "F", T0), ("u", "4", "U", T0)]
    dx = [("a", "10", "I48.91"), ("b", "10", "J45.909"), ("f", "10", "C61"), ("u", "10", "R07.9")]
    on, _ = both(stays, dx, [])
    off, _ = both(stays, dx, [], exclusions=False)
    assert on["a"]["427.22"] == -1 and off["a"]["427.22"] == 0 and on["b"]["427.22"] == 0
    assert on["f"]["185"] == -1 and on["u"]["185"] == -1 and on["u"]["174.11"] == -1
    assert on["f"]["174.11"] == 0


# ---------------------------------------------------------------- random rows shaped like MC-MED's
@pytest.mark.parametrize("source,min_count,exclusions", [
    ("visit", 1, True), ("visit", 2, True), ("visit", 3, False), ("all", 1, True), ("all", 2, True)])
def test_matches_slow_reference_on_random_rows(source, min_count, exclusions):
    stays, dx, hist = random_rows(7 + min_count)
    fast, _ = fast_labels(stays, dx, hist, source=source, min_code_count=min_count, exclusions=exclusions)
    slow = slow_labels(stays, dx, hist, source, min_count, exclusions)
    assert fast == slow
    cells = np.array([v for row in fast.values() for v in row.values()])
    assert (cells == 1).sum() > 10 and (cells == -1).sum() > 50  # the check exercised every state


def test_row_order_does_not_change_labels():
    stays, dx, hist = random_rows(3, n_patients=30)
    a, _ = fast_labels(stays, dx, hist, min_code_count=2)
    b, _ = fast_labels(stays[::-1], dx[::-1], hist[::-1], min_code_count=2)
    assert a == b


def test_unmapped_codes_are_counted():
    st, _ = frames([("a", "1", "M", T0), ("b", "2", "M", T0)],
                   [("a", "9", "999.99x"), ("a", "10", "U07.1"), ("a", "10", "I10"), ("b", "10", "u071")], [])
    codes = visit_codes(st)
    got = {(s, c): n for s, c, n in unmapped_codes(codes, resolve_codes(codes, PMAP)).iter_rows()}
    assert got == {("10", "U071"): 2, ("9", "99999X"): 1}
