"""The IEEE Signal Processing Cup 2015 training set (TROIKA; Zhang, Pi & Liu, IEEE TBME 2015):
``DATA_<nn>_TYPE<tt>.mat`` with its reference ``DATA_<nn>_TYPE<tt>_BPMtrace.mat`` (named
``REF_<nn>_TYPE<tt>.mat`` in some redistributions).

Each data file holds ``sig`` (``6 x n`` at 125 Hz: chest ECG, two wrist PPG channels, wrist
accelerometer x, y, z); each reference ``BPM0`` (one ECG-derived heart rate per 8-s window,
windows shifted by 2 s, window k covering [2k, 2k + 8) s). Twelve runners on a treadmill; the
wrist PPG is dominated by arm swing while running.

Written: the first PPG channel as one WFDB record per recording, and one example per reference
window (``start_s`` = 2 k, ``duration_s`` = 8), task ``heart_rate``. The subject is ``<nn>``
(subject 04 has two recordings). No official split (the probe's 8:2 by subject).
"""

from __future__ import annotations

import re
from pathlib import Path

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir

from .common import DatasetWriter, find_files, load_mat5
from .validate import numbers, signal

FS, WINDOW_S, SHIFT_S = 125.0, 8.0, 2.0
NAME = re.compile(r"DATA_(\d+)_TYPE(\d+)")


def convert(source, out, *, overwrite: bool = False, strict: bool = False) -> dict:
    source = Path(source)
    files = [p for p in find_files(source, "DATA_*_TYPE*.mat", "is this the SPC 2015 training folder?")
             if NAME.fullmatch(p.stem)]
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, "troika", {"heart_rate": "regression"}, channel="PPG", strict=strict)
        for path in files:
            with writer.each_file(path):
                subject, kind = NAME.fullmatch(path.stem).groups()
                ref = next((p for p in (path.with_name(f"{path.stem}_BPMtrace.mat"),
                                        path.with_name(f"REF_{subject}_TYPE{kind}.mat")) if p.is_file()), None)
                if ref is None:
                    raise InputError(path, f"no reference heart rate beside it ({path.stem}_BPMtrace.mat or "
                                     f"REF_{subject}_TYPE{kind}.mat)")
                layout = "6 x samples at 125 Hz (ECG, PPG, PPG, ACC x, y, z)"
                sig = numbers(path, "sig", load_mat5(path, ("sig",))["sig"], what=layout, ndim=2)
                if sig.shape[0] != 6:
                    raise InputError(path, f"sig has shape {sig.shape}; expected {layout}")
                ppg = signal(path, "sig's PPG (row 2)", sig[1], fs=FS, min_seconds=WINDOW_S, what=layout)
                bpm = numbers(ref, "BPM0", load_mat5(ref, ("BPM0",))["BPM0"],
                              what="one heart rate per 8-s window").ravel()
                n_windows = int((len(ppg) / FS - WINDOW_S) // SHIFT_S) + 1
                if len(bpm) > n_windows:
                    raise InputError(ref, f"{len(bpm)} reference windows, but {path.name} holds only {n_windows} "
                                     "8-s windows shifted by 2 s")
                record = writer.record(path.stem.lower(), ppg, FS)
                for k, h in enumerate(bpm):
                    writer.add(record=record, start_s=k * SHIFT_S, duration_s=WINDOW_S, subject=subject,
                               heart_rate=h)
        return writer.close(source=source, fmt="troika")
