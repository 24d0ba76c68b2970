"""What the overnight polysomnography sources share (MESA, CFS, HSP): one EDF per night, its ECG and
PPG channels found by name (:mod:`cohorts.corpus.edf`), cut into non-overlapping 10-s windows from
the first sample as the release's ``slide_1d_window`` cuts them (a shorter tail dropped), and read
a block of windows at a time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phewas.base.errors import InputError

from .edf import EdfRecording

WINDOW_S = 10.0


@dataclass(frozen=True)
class Channels:
    """A source's channel names: the release's (first) and the known variants after it."""

    ecg: tuple[str, ...]
    ppg: tuple[str, ...]


class PsgRecording:
    """One night's PPG and ECG as raw 10-s windows (see the module's text).

    ``channels="release"`` takes the release's names only, exactly; ``"aliases"`` the variants too.
    """

    contiguous = True

    def __init__(self, path: Path, names: Channels, *, channels: str = "aliases", units: str = "mv"):
        self.edf = EdfRecording(path)
        aliases = channels == "aliases"
        ecg_names = names.ecg if aliases else names.ecg[:1]
        ppg_names = names.ppg if aliases else names.ppg[:1]
        self.ecg = self.edf.channel(ecg_names, "ECG", aliases=aliases, units=units)
        self.ppg = self.edf.channel(ppg_names, "PPG", aliases=aliases, units=units)
        self.ppg_fs, self.ecg_fs = self.ppg.fs, self.ecg.fs
        self.ppg_len, self.ecg_len = int(WINDOW_S * self.ppg_fs), int(WINDOW_S * self.ecg_fs)
        self.n_windows = int(self.edf.duration_s // WINDOW_S)
        if self.n_windows == 0:
            raise InputError(path, f"{self.edf.duration_s:g} s long; a 10-s window needs more")
        self.channels = {"ppg": self.ppg.label, "ecg": self.ecg.label, "ppg_fs": self.ppg_fs, "ecg_fs": self.ecg_fs,
                         "ecg_unit": self.ecg.unit}

    def start_s(self, i: np.ndarray) -> np.ndarray:
        """Window ``i``'s start, seconds from the recording's first sample."""
        return np.asarray(i) * self.ppg_len / self.ppg_fs

    def windows(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw windows ``a`` to ``b - 1``: PPG ``[b - a, int(10 fs)]`` and ECG likewise, float64."""
        out = []
        for ch, length in ((self.ppg, self.ppg_len), (self.ecg, self.ecg_len)):
            x = self.edf.read(ch, a * length / ch.fs, b * length / ch.fs)
            need = (b - a) * length
            if len(x) < need:  # the last window of a channel shorter than the recording
                x = np.concatenate([x, np.full(need - len(x), np.nan)])
            out.append(x[:need].reshape(b - a, length))
        return out[0], out[1]
