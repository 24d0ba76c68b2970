"""PulseDB (Wang et al., Frontiers in Digital Health 2023; github pulselabteam/PulseDB): one
MATLAB 7.3 file per subject, ``PulseDB_MIMIC/pNNNNNN.mat`` and ``PulseDB_Vital/pNNNNNN.mat``, each
a struct array ``Subj_Wins`` of ready 10-s segments at 125 Hz. The release reads ``ECG_Raw`` and
``PPG_Raw`` (the unfiltered crops, each rescaled to [0, 1] within its segment), 1,250 samples
each, through h5py: ``/Subj_Wins/<field>`` holds one object reference per segment. Read here the
same way, a block of segments at a time.

The subject is ``<folder>:<file stem>`` (``PulseDB_MIMIC:p000160``): the two subsets reuse file
names (PulseDB's own info files tell them apart by a suffix; the release's flat output folder lets
one overwrite the other). A ``.mat`` file without ``Subj_Wins`` (PulseDB's subset and info files)
is skipped and listed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phewas.base.errors import InputError

NAME = "pulsedb"
FS, SAMPLES = 125.0, 1250
FIELDS = ("PPG_Raw", "ECG_Raw")


def files(source: Path) -> list[Path]:
    return sorted(Path(source).rglob("*.mat"))


def subject(path: Path, source: Path) -> str:
    return f"{path.parent.name}:{path.stem}"


class PulseDbRecording:
    """One subject's segments (see the module's text); windows are separate 10-s crops."""

    contiguous = False
    ppg_fs = ecg_fs = FS
    ppg_len = ecg_len = SAMPLES

    def __init__(self, path: Path):
        try:
            import h5py
        except ModuleNotFoundError:
            raise InputError(path, "is MATLAB 7.3 (HDF5): reading it needs h5py (pip install 'phewas[datasets]')") \
                from None
        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as err:
            raise InputError(self.path, f"not a readable MATLAB 7.3 (HDF5) file: truncated or damaged ({err})") \
                from None
        if "Subj_Wins" not in self.file:
            found = ", ".join(k for k in self.file if not k.startswith("#")) or "none"
            self.file.close()
            raise InputError(self.path, f"no Subj_Wins (expected a PulseDB segment file); variables: {found}")
        wins = self.file["Subj_Wins"]
        missing = [f for f in FIELDS if f not in wins]
        if missing:
            fields = ", ".join(wins)
            self.file.close()
            raise InputError(self.path, f"Subj_Wins has no field {missing[0]!r}; fields: {fields}")
        try:
            self.refs = {f: np.asarray(wins[f]).reshape(-1) for f in FIELDS}
        except OSError as err:
            raise InputError(self.path, f"Subj_Wins cannot be read: truncated or damaged ({err})") from None
        if len(self.refs["PPG_Raw"]) != len(self.refs["ECG_Raw"]):
            raise InputError(self.path, f"{len(self.refs['PPG_Raw'])} PPG_Raw and {len(self.refs['ECG_Raw'])} "
                             "ECG_Raw segments; expected one of each per segment")
        self.n_windows = len(self.refs["PPG_Raw"])
        if self.n_windows == 0:
            raise InputError(self.path, "Subj_Wins holds no segment")
        self.channels = {"ppg": "PPG_Raw", "ecg": "ECG_Raw", "ppg_fs": FS, "ecg_fs": FS}

    def start_s(self, i: np.ndarray) -> np.ndarray:
        """Segment ``i``'s position in the file times 10 s (PulseDB's segments are not one
        continuous recording)."""
        return np.asarray(i) * 10.0

    def windows(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for f in FIELDS:
            rows = []
            for k in range(a, b):
                try:
                    x = np.asarray(self.file[self.refs[f][k]], np.float64).reshape(-1)
                except (OSError, KeyError, ValueError, TypeError) as err:
                    raise InputError(self.path, f"segment {k + 1} of {f} cannot be read "
                                     f"({type(err).__name__})") from None
                if x.shape != (SAMPLES,):
                    raise InputError(self.path, f"segment {k + 1} of {f} holds {x.size} samples; expected "
                                     f"{SAMPLES} (10 s at 125 Hz)")
                rows.append(x)
            out.append(np.stack(rows))
        return out[0], out[1]

    def close(self):
        self.file.close()


def open_recording(path: Path, cfg) -> PulseDbRecording:
    return PulseDbRecording(path)
