"""WESAD (Schmidt et al., ICMI 2018): ``S2`` ... ``S17`` (no S1, S12), each ``S<k>/S<k>.pkl``.

Each pickle (Python 2, latin1) is a dict: ``signal.wrist.BVP`` (the Empatica E4's PPG, 64 Hz,
``(n, 1)``), other wrist and chest signals, ``label`` (700 Hz, the chest device's rate: 0 not
defined or transient, 1 baseline, 2 stress, 3 amusement, 4 meditation, 5-7 to be ignored) and
``subject``.

Written: the wrist BVP as one WFDB record per subject, and one example per non-overlapping 10-s
window whose every label sample is one of the four affective states, task ``affect``
(multi-class: baseline, stress, amusement, meditation), as the AnyPPG paper's four-state task
(its window rule is not published; 10-s windows give its class counts to within a few percent).
No official split (the probe's 8:2 by subject).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir

from .common import DatasetWriter, find_files, read_pickle_arrays
from .validate import numbers, signal

BVP_FS, LABEL_FS, WINDOW_S = 64.0, 700.0, 10.0
STATES = {1: "baseline", 2: "stress", 3: "amusement", 4: "meditation"}


def convert(source, out, *, overwrite: bool = False, strict: bool = False) -> dict:
    source = Path(source)
    files = find_files(source, "S*/S*.pkl", "is this the WESAD folder (S2/S2.pkl ...)?")
    mixed = 0
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, "wesad", {"affect": "multiclass"}, channel="PPG", strict=strict)
        for path in files:
            with writer.each_file(path):
                d = read_pickle_arrays(path, "WESAD pickle of arrays")
                try:
                    bvp, label = d["signal"]["wrist"]["BVP"], d["label"]
                except (KeyError, TypeError, IndexError, AttributeError) as err:
                    raise InputError(path, f"missing {err} (expected a dict with signal.wrist.BVP and label)") \
                        from None
                bvp = signal(path, "signal.wrist.BVP", bvp, fs=BVP_FS, min_seconds=WINDOW_S,
                             what="the E4's 64-Hz wrist PPG")
                label = numbers(path, "label", label, what="the protocol's ids 0-7 at 700 Hz").reshape(-1)
                if not np.isin(label, np.arange(8)).all():
                    raise InputError(path, "label holds values other than the protocol's ids 0-7")
                label = label.astype(np.int64)
                subject = path.stem
                record = writer.record(subject, bvp, BVP_FS)
                for start in np.arange(0, len(bvp) / BVP_FS - WINDOW_S + 1e-9, WINDOW_S):
                    states = label[int(round(start * LABEL_FS)):int(round((start + WINDOW_S) * LABEL_FS))]
                    if len(states) == 0:
                        break
                    if states.min() != states.max() or int(states[0]) not in STATES:
                        mixed += int(np.isin(states, list(STATES)).any())
                        continue
                    writer.add(record=record, start_s=float(start), duration_s=WINDOW_S, subject=subject,
                               affect=STATES[int(states[0])])
        return writer.close(source=source, fmt="wesad", counts={"windows_spanning_two_states": mixed})
