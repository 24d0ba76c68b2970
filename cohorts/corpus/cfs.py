"""CFS (Cleveland Family Study) polysomnography, NSRR: ``polysomnography/edfs/cfs-visit5-8NNNNN.edf``
(Compumedics E-Series). ECG ``ECG2`` (an electrode referenced to Fpz; 256 Hz in the first montage,
512 in the second) as the release takes it, and PPG ``PlethWV`` (128 Hz), which NSRR's montage
table lists for the first montage only: a night without it is skipped and listed (about half of
CFS, by public header scans). The subject is the CFS ID (``8NNNNN``)."""

from __future__ import annotations

import re
from pathlib import Path

from .psg import Channels, PsgRecording

NAME = "cfs"
CHANNELS = Channels(ecg=("ECG2", "ECG1", "ECG", "EKG"), ppg=("PlethWV", "Pleth", "PPG"))


def files(source: Path) -> list[Path]:
    return sorted(Path(source).rglob("*.edf"))


def subject(path: Path, source: Path) -> str:
    m = re.fullmatch(r"cfs-visit\d+-(\d+)", path.stem)
    return m.group(1) if m else path.stem


def open_recording(path: Path, cfg) -> PsgRecording:
    return PsgRecording(path, CHANNELS, channels=cfg.channels, units=cfg.ecg_units)
