import datetime as dt

import numpy as np
import polars as pl
import pytest

from cohorts.labels import label_matrix, map_codes, phecode_counts, visit_codes
from cohorts.phecodes import load_phecode_map

PMAP = load_phecode_map()
COL = {p: i for i, p in enumerate(PMAP.codes)}
T0 = dt.datetime(2262, 6, 1)


def stays_frame(rows):
    return pl.DataFrame(rows, schema={"stay_id": pl.String, "patient_id": pl.String, "sex": pl.String,
                                      "arrival": pl.Datetime("us"), "dx_icd9": pl.String,
                                      "dx_icd10": pl.String}, orient="row")


def history_frame(rows):
    return pl.DataFrame(rows, schema={"patient_id": pl.String, "system": pl.String, "code": pl.String,
                                      "noted": pl.Datetime("us")}, orient="row")


def labels_for(stays, history, source="visit", **kw):
    vdx, _ = map_codes(visit_codes(stays), PMAP)
    hist, _ = map_codes(history.filter(pl.col("noted").is_not_null()) if source == "visit" else history, PMAP)
    counts = phecode_counts(stays, vdx, hist, source)
    lab = label_matrix(stays["stay_id"].to_list(), stays["sex"].to_numpy(), counts, PMAP, **kw)
    return {s: {p: lab[i, COL[p]] for p in COL} for i, s in enumerate(stays["stay_id"])}


def test_rollup_multi_code_cells_and_systems():
    stays = stays_frame([("a", "1", "M", T0, None, "i48.91, R07.9"), ("b", "2", "F", T0, "v45.81", None)])
    lab = labels_for(stays, history_frame([]))
    assert lab["a"]["427.21"] == 1 and lab["a"]["427.2"] == 1 and lab["a"]["427"] == 1
    assert lab["a"]["418"] == 1  # R07.9, second code of the cell
    # V45.81 read as ICD-9 (from the column) maps to a circulatory phecode, not ICD-10 V45
    v4581 = PMAP.icd.filter((pl.col("system") == "9") & (pl.col("code") == "V4581"))["phecode"].to_list()
    assert v4581 and all(lab["b"][p] == 1 for p in v4581)


def test_exclusion_range_and_no_exclusions():
    # 427.22 (atrial flutter) has 427.21 in its exclusion range: an AF visit is not a flutter control
    assert "427.21" in PMAP.phecodes.filter(pl.col("phecode") == "427.22")["exclude_range"][0]
    stays = stays_frame([("a", "1", "M", T0, None, "I48.91"), ("b", "2", "M", T0, None, "J45.909")])
    on = labels_for(stays, history_frame([]))
    off = labels_for(stays, history_frame([]), exclusions=False)
    assert on["a"]["427.22"] == -1 and off["a"]["427.22"] == 0
    assert on["b"]["427.22"] == 0


def test_sex_rules():
    stays = stays_frame([("m", "1", "M", T0, None, "C61"), ("f", "2", "F", T0, None, "R07.9"),
                         ("u", "3", "U", T0, None, "R07.9")])
    lab = labels_for(stays, history_frame([]))
    assert lab["m"]["185"] == 1 and lab["f"]["185"] == -1 and lab["u"]["185"] == -1
    assert lab["f"]["174.11"] == 0 and lab["m"]["174.11"] == -1


def test_min_code_count_distinct_dates():
    stays = stays_frame([("a", "1", "M", T0, None, "I10"), ("b", "2", "M", T0, None, "I10")])
    hist = history_frame([("2", "10", "I10", T0 - dt.timedelta(days=30))])
    lab = labels_for(stays, hist, min_code_count=2)
    assert lab["a"]["401.1"] == -1  # one code: neither case nor control
    assert lab["b"]["401.1"] == 1  # same code on two dates


def test_history_dates_visit_vs_all():
    stays = stays_frame([("early", "1", "F", T0, None, "R07.9"),
                         ("late", "1", "F", T0 + dt.timedelta(days=100), None, "R07.9")])
    hist = history_frame([("1", "10", "E11.9", T0 + dt.timedelta(days=50)),
                          ("1", "10", "I10", None)])
    v = labels_for(stays, hist, "visit")
    assert v["early"]["250.2"] == 0 and v["late"]["250.2"] == 1
    assert v["late"]["401.1"] == 0  # undated history left out in visit mode
    a = labels_for(stays, hist, "all")
    assert a["early"]["250.2"] == 1 and a["early"]["401.1"] == 1


def slow_labels(present_counts, sexes, min_count, exclusions):
    """Obvious reference: loop over every stay and phecode."""
    info = PMAP.phecodes
    excl = info["exclude_range"].to_list()
    rule = info["sex"].to_list()
    out = np.zeros((len(present_counts), len(COL)), np.int8)
    for i, counts in enumerate(present_counts):
        for j, p in enumerate(PMAP.codes):
            c = counts.get(p, 0)
            if c >= min_count:
                v = 1
            elif c > 0:
                v = -1
            elif exclusions and any(counts.get(q, 0) > 0 for q in (excl[j] or []) if q != p):
                v = -1
            else:
                v = 0
            if rule[j] != "Both" and sexes[i] != rule[j]:
                v = -1
            out[i, j] = v
    return out


@pytest.mark.parametrize("min_count,exclusions", [(1, True), (2, True), (1, False)])
def test_label_matrix_matches_slow_reference(min_count, exclusions):
    rng = np.random.default_rng(0)
    n = 40
    sexes = rng.choice(["F", "M", "U"], n)
    pick = rng.choice(len(COL), 60, replace=False)
    rows = []
    for i in range(n):
        for j in rng.choice(pick, rng.integers(0, 12)):
            rows.append((f"s{i}", PMAP.codes[j], int(rng.integers(1, 4))))
    counts = pl.DataFrame(rows, schema=["stay_id", "phecode", "n"], orient="row").unique(["stay_id", "phecode"])
    per_stay = [dict((p, c) for s, p, c in counts.iter_rows() if s == f"s{i}") for i in range(n)]
    fast = label_matrix([f"s{i}" for i in range(n)], sexes, counts, PMAP, min_code_count=min_count,
                        exclusions=exclusions)
    np.testing.assert_array_equal(fast, slow_labels(per_stay, sexes, min_count, exclusions))


def test_unmapped_codes_are_counted():
    stays = stays_frame([("a", "1", "M", T0, "999.99x", "U07.1, I10"), ("b", "2", "M", T0, None, "u071")])
    _, unmapped = map_codes(visit_codes(stays), PMAP)
    got = {(s, c): n for s, c, n in unmapped.iter_rows()}
    assert got == {("10", "U071"): 2, ("9", "99999X"): 1}
