"""Gyro-Acc-PPG (Lee, Chung & Lee, IEEE Sensors J. 2018; GitHub ``hooseok/gyro_acc_ppg``):
``Subject_1.mat`` ... ``Subject_24.mat``.

Each file (MATLAB 5) holds ``sigPPG`` (``3 x n``: three wrist PPG channels 6 mm apart, raw ADC
counts, 50 Hz), ``sigAcc`` and ``sigGyro`` (``3 x n`` at 50 Hz, offset by 32768) and the
reference from a chest ECG: ``timeECG`` (beat times, s) and ``bpmECG`` (each beat's
instantaneous rate, bpm). The protocol is 14 minutes on a treadmill: rest, walking and running.

Written: the first PPG channel as one WFDB record per subject, and one example per
non-overlapping 10-s window labelled with ``heart_rate``, the mean of ``bpmECG`` over the beats
inside it (a window with fewer than three beats is skipped and counted). The 10-s window is the
encoder's own input length; the paper does not publish its windows. No official split (the
probe's 8:2 by subject).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir

from .common import DatasetWriter, find_files, load_mat5
from .validate import numbers, signal

FS, WINDOW_S = 50.0, 10.0


def convert(source, out, *, overwrite: bool = False, strict: bool = False) -> dict:
    source = Path(source)
    files = find_files(source, "Subject_*.mat", "is this the gyro_acc_ppg folder (Subject_1.mat ...)?")
    skipped = 0
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, "gyro-acc-ppg", {"heart_rate": "regression"}, channel="PPG", strict=strict)
        for path in files:
            with writer.each_file(path):
                d = load_mat5(path, ("sigPPG", "timeECG", "bpmECG"))
                layout = "3 x samples at 50 Hz (three wrist PPG channels)"
                # uint16 in the files: numbers() casts to float64 before any arithmetic
                ppg = numbers(path, "sigPPG", d["sigPPG"], what=layout, ndim=2)
                if 3 not in ppg.shape:
                    raise InputError(path, f"sigPPG has shape {ppg.shape}; expected {layout}")
                ppg = ppg if ppg.shape[0] == 3 else ppg.T
                first = signal(path, "sigPPG's first channel", ppg[0], fs=FS, min_seconds=WINDOW_S, what=layout)
                times = numbers(path, "timeECG", d["timeECG"], what="beat times (s)", min_size=0).ravel()
                bpm = numbers(path, "bpmECG", d["bpmECG"], what="one rate per beat (bpm)", min_size=0).ravel()
                if len(times) != len(bpm):
                    raise InputError(path, f"timeECG has {len(times)} beats and bpmECG {len(bpm)}; expected one "
                                     "rate per beat")
                subject = re.sub(r"\D", "", path.stem)
                if not subject:
                    raise InputError(path, "the file name holds no subject number (Subject_<k>.mat)")
                record = writer.record(f"subject_{int(subject):02d}", first, FS)
                for start in np.arange(0, len(first) / FS - WINDOW_S + 1e-9, WINDOW_S):
                    inside = (times >= start) & (times < start + WINDOW_S) & np.isfinite(bpm)
                    if inside.sum() < 3:
                        skipped += 1
                        continue
                    writer.add(record=record, start_s=float(start), duration_s=WINDOW_S, subject=subject,
                               heart_rate=float(bpm[inside].mean()))
        return writer.close(source=source, fmt="gyro-acc-ppg", counts={"windows_with_fewer_than_3_beats": skipped})
