"""PPG-DaLiA (Reiss et al. 2019, UCI 495), ``PPG_FieldStudy/S<k>/S<k>.pkl``.

Each pickle (Python 2, latin1) is a dict: ``signal.wrist.BVP`` (64 Hz, ``(n, 1)``), ``label``
(the ECG-derived heart rate of each 8-s window, windows shifted by 2 s, the first at 0 s) and
``activity`` (4 Hz ids: 0 transient, 1 sitting, 2 stairs, 3 table soccer, 4 cycling, 5 driving,
6 lunch, 7 walking, 8 working). Written: one WFDB record per subject and one example per
labelled window (``start_s`` = 2 k, ``duration_s`` = 8), tasks ``heart_rate`` (regression) and
``activity`` (multi-class: the most frequent id over the window; unlabelled where that is the
transient id 0). No official split (the probe's 8:2 by subject).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir

from .common import DatasetWriter, find_files, read_pickle_arrays

FS, WINDOW_S, SHIFT_S, ACTIVITY_FS = 64.0, 8.0, 2.0, 4.0


def convert(source, out, *, overwrite: bool = False) -> dict:
    source = Path(source)
    files = find_files(source, "S*/S*.pkl", "is this PPG-DaLiA's PPG_FieldStudy folder?")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, "ppg-dalia", {"heart_rate": "regression", "activity": "multiclass"},
                               channel="PPG")
        for path in files:
            d = read_pickle_arrays(path, "PPG-DaLiA pickle of arrays")
            try:
                bvp = np.asarray(d["signal"]["wrist"]["BVP"], dtype=np.float64).reshape(-1)
                hr = np.asarray(d["label"], dtype=np.float64).reshape(-1)
                activity = np.asarray(d.get("activity", np.zeros(0)), dtype=np.float64).reshape(-1)
            except (KeyError, TypeError) as err:
                raise InputError(path, f"missing {err} (expected signal.wrist.BVP, label, activity)") from None
            subject = path.stem
            record = writer.record(subject, bvp, FS)
            for k, h in enumerate(hr):
                start = k * SHIFT_S
                ids = activity[int(start * ACTIVITY_FS):int((start + WINDOW_S) * ACTIVITY_FS)].astype(int)
                mode = int(np.bincount(ids).argmax()) if len(ids) else 0
                writer.add(record=record, start_s=start, duration_s=WINDOW_S, subject=subject,
                           heart_rate=float(h) if np.isfinite(h) else None,
                           activity=mode if mode > 0 else None)  # mostly transient (id 0): unlabelled
        return writer.close(source=source, fmt="ppg-dalia")
