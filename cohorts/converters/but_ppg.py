"""BUT PPG (Nemcova et al. 2021; PhysioNet ``butppg``), versions 1.0.0 and 2.0.0.

The folder as PhysioNet ships it: ``quality-hr-ann.csv`` (``ID``, ``Quality``, ``HR``) and
``subject-info.csv`` (one row per record), both with a UTF-8 byte-order mark, and a folder per
record, ``<ID>/<ID>_PPG.hea/.dat`` (smartphone camera PPG, 30 Hz, 10 s). The record ID has six
digits, the first three the subject's.

The two versions differ:

* 1.0.0 (48 records, subjects 100-111): ``subject-info.csv`` has ``ID, Gender, Age, Weight,
  Motion``. Its PPG headers are laid out unusually: the record line reads ``100001_PPG 300 30 1``,
  300 signals of one sample each, and each sample's value is carried by its signal's gain and
  baseline, ``(0 - baseline) / gain`` (the ``.dat`` holds zeros); ``wfdb.rdrecord`` returns it
  as a ``(1, 300)`` row. 2.0.0 keeps these 48 records as they were.
* 2.0.0 (3,888 records, 50 subjects): ``subject-info.csv`` has ``ID, Gender, Age [years],
  Height [cm], Weight [kg], Ear/finger, Motion, Blood pressure [mmHg], Glycaemia [mmol/l],
  SpO2 [%]``, the blood pressure one text ``SBP/DBP``; the other records' headers are ordinary
  (300 samples of one or three signals; ``PPG_R`` is read where there are several, else the
  first).

Written: one WFDB record per example, tasks ``quality`` (binary, 1 good), ``heart_rate``,
``sbp``, ``dbp`` and ``age`` (regression; blood pressure is empty in 1.0.0). No official split
(the probe's 8:2 by subject). Anything else in a header is an error naming the file.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir

from .common import DatasetWriter
from .validate import signal

TASKS = {"quality": "binary", "heart_rate": "regression", "sbp": "regression", "dbp": "regression",
         "age": "regression"}
FS, SECONDS = 30.0, 10.0


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[dict]:
    """A CSV as dicts (byte-order mark removed, values stripped); a missing column names the file."""
    if not path.is_file():
        raise InputError(path, "not found (is this BUT PPG's root folder?)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise InputError(path, f"no column {missing[0]!r}; columns: {', '.join(header)}")
        return [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]


def read_ppg(hea: Path) -> np.ndarray:
    """One record's 10-s PPG as a 1-D array, from either header layout (see the module's text)."""
    import wfdb
    try:
        header = wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as err:  # noqa: BLE001 - wfdb raises many kinds on a damaged header
        raise InputError(hea, f"unreadable WFDB header ({err})") from None
    n_sig, n = header.n_sig, header.sig_len
    if n == 1 and n_sig > 1:  # 1.0.0's layout: one sample per signal, the value in gain and baseline
        gains = np.asarray(header.adc_gain, dtype=np.float64)
        base = np.asarray(header.baseline, dtype=np.float64)
        if (gains == 0).any():
            raise InputError(hea, "a signal has gain 0: the value of its sample is undefined")
        return (0.0 - base) / gains
    if n_sig < 1 or n < 2:
        raise InputError(hea, f"expected 300 samples of 1 or 3 signals at 30 Hz (or version 1.0.0's 300 signals "
                         f"of 1 sample), found {n_sig} signals of {n} samples")
    try:
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
    except Exception as err:  # noqa: BLE001 - and on a damaged signal file
        raise InputError(hea.with_suffix(".dat"), f"unreadable WFDB signal ({err})") from None
    names = list(rec.sig_name or [])
    j = names.index("PPG_R") if "PPG_R" in names else 0
    return rec.p_signal[:, j].astype(np.float64)


def blood_pressure(text: str, path: Path, row: int) -> tuple[float | None, float | None]:
    """``128/76`` -> (128, 76); empty -> (None, None)."""
    if not text:
        return None, None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*", text)
    if not m:
        raise InputError(path, f"blood pressure {text!r} is not SBP/DBP", row=row, column="Blood pressure [mmHg]")
    return float(m.group(1)), float(m.group(2))


def _number(text: str, path: Path, row: int, column: str) -> float | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(path, f"not a number: {text!r}", row=row, column=column) from None


def convert(source, out, *, overwrite: bool = False, strict: bool = False) -> dict:
    source = Path(source)
    quality_csv, info_csv = source / "quality-hr-ann.csv", source / "subject-info.csv"
    quality = read_csv_rows(quality_csv, ("ID", "Quality", "HR"))
    info_rows = read_csv_rows(info_csv, ("ID",))
    info = {r["ID"].zfill(6): (i, r) for i, r in enumerate(info_rows, start=2)}
    age_column = next((c for c in ("Age [years]", "Age") if info_rows and c in info_rows[0]), None)
    bp_column = "Blood pressure [mmHg]" if info_rows and "Blood pressure [mmHg]" in info_rows[0] else None
    missing, version = 0, "2.0.0" if bp_column else "1.0.0"
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, "but-ppg", TASKS, channel="PPG", strict=strict)
        for row, q in enumerate(quality, start=2):
            rid = q["ID"].zfill(6)
            if not re.fullmatch(r"\d{6}", rid):
                raise InputError(quality_csv, f"record ID {q['ID']!r} is not six digits", row=row, column="ID")
            hea = source / rid / f"{rid}_PPG.hea"
            if not hea.is_file():
                missing += 1
                continue
            x = None
            with writer.each_file(hea):  # a damaged record: skipped and listed (an error with strict)
                x = signal(hea, "the PPG", read_ppg(hea), fs=FS, min_seconds=5, what="about 10 s at 30 Hz")
            if x is None:
                continue
            quality_value = _number(q["Quality"], quality_csv, row, "Quality")
            if quality_value not in (0.0, 1.0, None):
                raise InputError(quality_csv, f"quality {q['Quality']!r} is not 0 or 1", row=row, column="Quality")
            info_row, subject_info = info.get(rid, (None, {}))
            sbp, dbp = (blood_pressure(subject_info.get(bp_column, ""), info_csv, info_row)
                        if bp_column and info_row else (None, None))
            age = _number(subject_info.get(age_column, ""), info_csv, info_row, age_column) if age_column and \
                info_row else None
            writer.add(record=writer.record(rid, x, FS), subject=rid[:3],
                       quality=None if quality_value is None else int(quality_value),
                       heart_rate=_number(q["HR"], quality_csv, row, "HR"), sbp=sbp, dbp=dbp, age=age)
        if not writer.rows and not writer.skipped:
            raise InputError(source, f"none of the {len(quality)} records of quality-hr-ann.csv has <ID>/<ID>_PPG.hea")
        return writer.close(source=source, fmt="but-ppg", counts={"records_missing": missing},
                            notes={"version": version})
