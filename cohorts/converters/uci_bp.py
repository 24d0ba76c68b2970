"""UCI "Cuff-Less Blood Pressure Estimation" (Kachuee et al. 2015/2017; UCI 340): ``Part_1.mat``
... ``Part_4.mat``.

Each file holds one variable named as the file (``Part_1``), a cell array of records (3,000 per
file as published), each record a ``3 x N`` matrix sampled at 125 Hz: fingertip PPG, arterial
blood pressure (mmHg) and ECG lead II. The published files are MATLAB 7.3 (HDF5, read with
h5py); a version 5 copy (scipy) is read as well. There are no subject identifiers: records of
one patient sit next to each other, about a thousand patients in all.

Written: one WFDB record (the PPG) per record, and one example per non-overlapping 10-s window
with ``sbp`` and ``dbp`` from the arterial pressure of that window: the medians of its beats'
maxima and minima (peaks found by ``scipy.signal.find_peaks``, at least 0.3 s apart and 10 mmHg
prominent). A window with fewer than three beats, pressures outside 60-250 / 30-150 mmHg, a
pulse pressure under 10 mmHg, or a missing (non-finite) pressure sample is skipped and counted.
A record that is not 3 x samples of numbers is skipped and listed. The record stands for the
subject (no patient identifier exists, so one patient's records may fall on both sides of the
split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import find_peaks

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir

from .common import DatasetWriter, find_files, mat_cells
from .validate import numbers

FS, WINDOW_S = 125.0, 10.0
SBP_RANGE, DBP_RANGE, MIN_PULSE_PRESSURE = (60.0, 250.0), (30.0, 150.0), 10.0


def window_pressures(abp: np.ndarray, fs: float = FS, window_s: float = WINDOW_S):
    """Per non-overlapping window of ``abp``: ``(start_s, sbp, dbp)``, or ``(start_s, None, None)``
    where the window fails the rules of the module's description."""
    w = int(round(window_s * fs))
    finite = np.isfinite(abp)
    abp = np.where(finite, abp, np.nanmedian(abp) if finite.any() else 0.0)  # find_peaks needs numbers
    peaks, _ = find_peaks(abp, distance=max(1, int(0.3 * fs)), prominence=10.0)
    troughs, _ = find_peaks(-abp, distance=max(1, int(0.3 * fs)), prominence=10.0)
    out = []
    for a in range(0, len(abp) - w + 1, w):
        if not finite[a:a + w].all():  # a gap in the pressure: no label
            out.append((a / fs, None, None))
            continue
        p = abp[peaks[(peaks >= a) & (peaks < a + w)]]
        t = abp[troughs[(troughs >= a) & (troughs < a + w)]]
        sbp = float(np.median(p)) if len(p) >= 3 else None
        dbp = float(np.median(t)) if len(t) >= 3 else None
        ok = (sbp is not None and dbp is not None and SBP_RANGE[0] <= sbp <= SBP_RANGE[1]
              and DBP_RANGE[0] <= dbp <= DBP_RANGE[1] and sbp - dbp >= MIN_PULSE_PRESSURE)
        out.append((a / fs, sbp if ok else None, dbp if ok else None))
    return out


def convert(source, out, *, overwrite: bool = False, strict: bool = False) -> dict:
    source = Path(source)
    files = find_files(source, "[Pp]art_*.mat", "is this the UCI Cuff-Less Blood Pressure folder (Part_1.mat ...)?")
    skipped = windows = 0
    layout = "3 x samples at 125 Hz (PPG, ABP, ECG)"
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, "uci-bp", {"sbp": "regression", "dbp": "regression"}, channel="PPG",
                               strict=strict)
        for path in files:
            with writer.each_file(path):  # a file that cannot be read (truncated, say): skipped whole
                # the variable is named as the file (Part_1); a version 5 copy calls it p
                name, records = mat_cells(path, (path.stem[0].upper() + path.stem[1:], path.stem, "p"))
                for i, rec in enumerate(records):
                    where = f"record {i + 1} of {name}"
                    with writer.each_file(f"{path}: {where}"):  # a damaged record: skipped alone
                        rec = numbers(path, where, rec, what=layout, ndim=2)
                        if 3 not in rec.shape:
                            raise InputError(path, f"{where} has shape {rec.shape}; expected {layout}")
                        if rec.shape[0] != 3:
                            rec = rec.T
                        rid = f"{path.stem.lower()}_{i + 1:04d}"
                        labelled = [(s, b, d) for s, b, d in window_pressures(rec[1]) if b is not None]
                        n = len(rec[1]) // int(WINDOW_S * FS)
                        windows += n
                        skipped += n - len(labelled)
                        if not labelled:
                            continue
                        record = writer.record(rid, rec[0], FS)
                        for start, sbp, dbp in labelled:
                            writer.add(record=record, start_s=start, duration_s=WINDOW_S, subject=rid, sbp=sbp,
                                       dbp=dbp)
        return writer.close(source=source, fmt="uci-bp",
                            counts={"windows": windows, "windows_skipped_by_pressure_rules": skipped})
