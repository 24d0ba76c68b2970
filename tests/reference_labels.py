"""A slow, obvious per-patient implementation of R PheWAS' labelling rules, and the rows the
label tests feed to it and to ``cohorts.labels`` (``tests/cohorts/test_labels.py``,
``tests/cohorts/test_build_cohort.py``, ``tests/cohorts/test_phecode_x.py``).

The reference reads the phecode 1.2 CSV with the ``csv`` module and loops over each stay's
patient's rows in plain Python: it shares no code with ``cohorts.labels``.
"""

import csv
import datetime as dt
import re

import numpy as np
import polars as pl

from cohorts.labels import iter_label_blocks
from cohorts.phecodes import PhecodeMap, map_path

T0 = dt.datetime(2262, 6, 1, 9, 30)  # past pandas' nanosecond range on purpose


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


# ---------------------------------------------------------------- rows as the fast path reads them
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


# ---------------------------------------------------------------- the library's labels, as one array
def label_stays(stays: pl.DataFrame, visit_dx: pl.DataFrame, history: pl.DataFrame,
                pmap: PhecodeMap, *, source: str = "visit", min_code_count: int = 1,
                exclusions: bool = True) -> tuple[np.ndarray, dict]:
    """``cohorts.labels.iter_label_blocks`` as one dense array (what the tests compare with
    :func:`slow_labels`): 1 case, 0 control, -1 excluded (null on disk).

    Parameters
    ----------
    stays : DataFrame with ``stay_id``, ``patient_id``, ``sex`` ("F"/"M"/"U"), ``arrival``; the
        row order of the result.
    visit_dx : visit diagnoses (:func:`cohorts.labels.visit_codes`): ``patient_id``, ``system``, ``code`` (as
        written), ``date``.
    history : history rows: ``patient_id``, ``system``, ``code``, ``noted`` (null when undated).
    source : "visit" (codes up to the stay) or "all" (every code of the patient).
    min_code_count : distinct days a case needs; fewer but some is excluded.
    exclusions : apply the exclusion ranges to would-be controls.

    Returns
    -------
    labels : int8 array ``[n_stays, n_phecodes]`` in ``pmap.codes`` order.
    info : dict of counts: ``undated_cells_nulled`` (visit mode: cells that would have been
        controls), ``patient_phecode_pairs``.
    """
    info: dict = {}
    blocks = [blk for _, blk in iter_label_blocks(stays, visit_dx, history, pmap, source=source,
                                                   min_code_count=min_code_count,
                                                   exclusions=exclusions, info=info)]
    labels = np.concatenate(blocks) if blocks else np.zeros((0, len(pmap.codes)), np.int8)
    return labels, info
