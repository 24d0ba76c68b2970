"""HSP (Human Sleep Project, BDSP), a BIDS tree:
``sub-<site><id>/ses-<n>/eeg/sub-<site><id>_ses-<n>_task-psg_eeg.edf`` (a site's folder may sit
above; one site writes ``task-PSG``). ECG ``ECG-LA`` (one limb electrode) and PPG ``Pleth`` as
the release takes them, with the variants other sites and years use (``EKG``, ``ECG``,
``ECG II``, ``ECGL``; ``PPG``, ``Plethysmogram``); rates from each file's header.

The subject is the ``sub-`` folder, so a patient's sessions stay on one side of the split (the
release splits by session). Every site is read (the release keeps ``sub-S*`` only). The release
configures HSP's windows as 60 s at 50 Hz (PPG) and 125 Hz (ECG); those could not have reached
its model (its batches concatenate 10-s chunks and would fail on them, and its chunk database
overflows with them), so HSP is read as every other source: 10-s windows, 125 and 500 Hz.
"""

from __future__ import annotations

from pathlib import Path

from .psg import Channels, PsgRecording

NAME = "hsp"
CHANNELS = Channels(ecg=("ECG-LA", "EKG", "ECG", "ECG II", "ECGL", "EKG-L"),
                    ppg=("Pleth", "PPG", "Plethysmogram", "Finger PPG"))


def files(source: Path) -> list[Path]:
    return sorted(p for p in Path(source).rglob("*_eeg.edf") if p.name.lower().endswith("_task-psg_eeg.edf")
                  and p.name.startswith("sub-"))


def subject(path: Path, source: Path) -> str:
    return path.name.split("_")[0]


def open_recording(path: Path, cfg) -> PsgRecording:
    return PsgRecording(path, CHANNELS, channels=cfg.channels, units=cfg.ecg_units)
