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
from .validate import numbers, signal

FS, WINDOW_S, SHIFT_S, ACTIVITY_FS = 64.0, 8.0, 2.0, 4.0


def convert(source, out, *, overwrite: bool = False, strict: bool = False) -> dict:
    source = Path(source)
    files = find_files(source, "S*/S*.pkl", "is this PPG-DaLiA's PPG_FieldStudy folder?")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, "ppg-dalia", {"heart_rate": "regression", "activity": "multiclass"},
                               channel="PPG", strict=strict)
        for path in files:
            with writer.each_file(path):
                d = read_pickle_arrays(path, "PPG-DaLiA pickle of arrays")
                try:
                    bvp, hr, activity = d["signal"]["wrist"]["BVP"], d["label"], d.get("activity", np.zeros(0))
                except (KeyError, TypeError, IndexError, AttributeError) as err:
                    raise InputError(path, f"missing {err} (expected a dict with signal.wrist.BVP, label, "
                                     "activity)") from None
                bvp = signal(path, "signal.wrist.BVP", bvp, fs=FS, min_seconds=WINDOW_S, what="64-Hz wrist PPG")
                hr = numbers(path, "label", hr, what="a heart rate per 8-s window", min_size=0).reshape(-1)
                activity = numbers(path, "activity", activity, what="activity ids at 4 Hz", min_size=0).reshape(-1)
                if not np.isin(activity, np.arange(9)).all():
                    raise InputError(path, "activity holds values other than the ids 0-8")
                subject = path.stem
                record = writer.record(subject, bvp, FS)
                for k, h in enumerate(hr):
                    start = k * SHIFT_S
                    ids = activity[int(start * ACTIVITY_FS):int((start + WINDOW_S) * ACTIVITY_FS)].astype(int)
                    mode = int(np.bincount(ids).argmax()) if len(ids) else 0
                    writer.add(record=record, start_s=start, duration_s=WINDOW_S, subject=subject, heart_rate=h,
                               activity=mode if mode > 0 else None)  # mostly transient (id 0): unlabelled
        return writer.close(source=source, fmt="ppg-dalia")
