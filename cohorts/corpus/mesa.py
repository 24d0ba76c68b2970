"""MESA (Multi-Ethnic Study of Atherosclerosis) sleep polysomnography, NSRR:
``polysomnography/edfs/mesa-sleep-NNNN.edf`` (Compumedics Profusion exports, about 12 h, 27
signals). ECG ``EKG`` and PPG ``Pleth`` (Nonin 8000), both 256 Hz as NSRR documents them
(nsrr/mesa-documentation, montage and sampling rates); rates are read from each file's header.
The subject is the MESA ID (``NNNN``): one night each."""

from __future__ import annotations

import re
from pathlib import Path

from .psg import Channels, PsgRecording

NAME = "mesa"
CHANNELS = Channels(ecg=("EKG", "ECG", "ECG1", "ECG II"), ppg=("Pleth", "PlethWV", "PPG"))


def files(source: Path) -> list[Path]:
    return sorted(Path(source).rglob("*.edf"))


def subject(path: Path, source: Path) -> str:
    m = re.fullmatch(r"mesa-sleep-(\d+)", path.stem)
    return m.group(1) if m else path.stem


def open_recording(path: Path, cfg) -> PsgRecording:
    return PsgRecording(path, CHANNELS, channels=cfg.channels, units=cfg.ecg_units)
