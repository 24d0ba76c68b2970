"""Labels against a slow, obvious per-patient implementation of R PheWAS' rules.

The reference reads the phecode 1.2 CSV with the ``csv`` module and loops over each stay's
patient's rows in plain Python: it shares no code with ``cohorts.labels``.
"""

import csv
import datetime as dt
import re

import numpy as np
import polars as pl
import pytest

from cohorts.labels import label_stays, resolve_codes, unmapped_codes, visit_codes
from cohorts.phecodes import load_phecode_map, map_path

PMAP = load_phecode_map()
COL = {p: i for i, p in enumerate(PMAP.codes)}
T0 = dt.datetime(2262, 6, 1, 9, 30)  # past pandas' nanosecond range on purpose
DAY = dt.timedelta(days=1)


# ---------------------------------------------------------------- the slow reference
def _read_map():
    exact, info = {}, {}
    with open(map_path(), newline="") as f:
        for r in csv.DictReader(f):
            key = (r["flag"], r["ICD"].replace(".", ""))
            exact.setdefault(key, set()).add(r["phecode_unrolled"])
            info[r["phecode"]] = (r["sex"], [q.strip() for q in r["exclude_range"].split(",") if q.strip()])
    folded = {}
    for (flag, code), phes in exact.items():
        up = code.upper()
        # the upper-case spelling wins; a spelling that is not upper case serves only alone
        if code == up or (flag, up) not in exact:
            folded.setdefault((flag, up), set()).update(phes)
    return exact, folded, info


EXACT, FOLDED, INFO = _read_map()


def slow_map(system, cell):
    """Phecodes of a cell: comma-separated codes, each exact spelling first, then folded."""
    out = set()
    for code in cell.split(","):
        code = re.sub(r"[\s.]", "", code)
        out |= EXACT[(system, code)] if (system, code) in EXACT else FOLDED.get((system, code.upper()), set())
    return out


def slow_labels(stays, visits_dx, history, source="visit", min_count=1, exclusions=True):
    """Loop over every stay: the R PheWAS rules, one patient at a time.

    ``stays``: list of (stay_id, patient, sex, arrival); ``visits_dx``: list of
    (stay_id, system, code); ``history``: list of (patient, system, code, noted or None).
    """
    arrival = {s: a for s, _, _, a in stays}
    patient_of = {s: p for s, p, _, _ in stays}
    out = {}
    for sid, pat, sex, arr in stays:
        days, unknown = {}, set()
        for s2, system, code in visits_dx:
            if patient_of[s2] != pat or (source == "visit" and arrival[s2] > arr):
                continue
            for phe in slow_map(system, code):
                days.setdefault(phe, set()).add(arrival[s2].date())
        for p2, system, code, noted in history:
            if p2 != pat:
                continue
            for phe in slow_map(system, code):
                if noted is None:
                    unknown.add(phe)
                elif source == "all" or noted.date() <= arr.date():
                    days.setdefault(phe, set()).add(noted.date())
        if source == "all":  # an undated row is one more (unknown) date, as R's unique(NA)
            for phe in unknown:
                days.setdefault(phe, set()).add(None)
            unknown = set()
        row = {}
        for phe, (rule, rng) in INFO.items():
            n = len(days.get(phe, ()))
            excluded_by_range = exclusions and any(days.get(q) or q in unknown for q in rng if q != phe)
            if n >= min_count:
                v = 1
            elif n > 0 or excluded_by_range or phe in unknown:
                v = -1
            else:
                v = 0
            if rule == "Female" and sex != "F" or rule == "Male" and sex != "M":
                v = -1
            row[phe] = v
        out[sid] = row
    return out


# ---------------------------------------------------------------- helpers for the fast path
def frames(stays, visits_dx, history):
    dx9 = {s: ", ".join(c for s2, sy, c in visits_dx if s2 == s and sy == "9") or None for s, *_ in stays}
    dx10 = {s: ", ".join(c for s2, sy, c in visits_dx if s2 == s and sy == "10") or None for s, *_ in stays}
    st = pl.DataFrame([(s, p, x, a, dx9[s], dx10[s]) for s, p, x, a in stays],
                      schema={"stay_id": pl.String, "patient_id": pl.String, "sex": pl.String,
                              "arrival": pl.Datetime("us"), "dx_icd9": pl.String, "dx_icd10": pl.String},
                      orient="row")
    hist = pl.DataFrame(history, schema={"patient_id": pl.String, "system": pl.String, "code": pl.String,
                                         "noted": pl.Datetime("us")}, orient="row")
    return st, hist


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
CODES = [("10", "I48.91"), ("9", "427.31"), ("10", "I10"), ("9", "401.9"), ("10", "R07.9"),
         ("9", "786.50"), ("10", "E11.9"), ("10", "J45.909"), ("10", "T45.0X1"), ("10", "T45.0x1"),
         ("10", "N40.0"), ("10", "C61"), ("10", "O80"), ("10", "I50.9"), ("9", "428.0"),
         ("10", "D64.9"), ("10", "H21.1X1"), ("9", "V45.81"), ("10", "U07.1"), ("10", "I4891")]


def random_rows(seed, n_patients=60):
    rng = np.random.default_rng(seed)
    stays, dx, hist = [], [], []
    for p in range(n_patients):
        sex = str(rng.choice(["F", "M", "U"], p=[0.5, 0.45, 0.05]))
        t = T0 + dt.timedelta(days=int(rng.integers(0, 900)), hours=float(rng.uniform(0, 12)))
        for v in range(int(rng.integers(1, 5))):
            sid = f"s{p}_{v}"
            stays.append((sid, str(p), sex, t))
            k = rng.integers(len(CODES))
            dx.append((sid, *CODES[k]))
            if rng.random() < 0.4:  # dual-coded: the same disease in both systems
                dx.append((sid, "9" if CODES[k][0] == "10" else "10", CODES[(k + 1) % len(CODES)][1]
                           if CODES[(k + 1) % len(CODES)][0] != CODES[k][0] else "786.50"))
            # same-day revisits, and longer gaps
            t = t + (dt.timedelta(hours=float(rng.uniform(1, 8))) if rng.random() < 0.3
                     else dt.timedelta(days=float(rng.exponential(60)) + 1))
        for _ in range(int(rng.poisson(3))):
            system, code = CODES[rng.integers(len(CODES))]
            noted = None if rng.random() < 0.15 else (
                T0 + dt.timedelta(days=int(rng.integers(-300, 1000))))
            if rng.random() < 0.2:
                code = code.lower()
            hist.append((str(p), system, code, noted))
    return stays, dx, hist


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
