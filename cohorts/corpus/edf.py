"""EDF and EDF+ recordings read channel by channel and block by block, never whole.

Read with ``edfio`` (pure Python; the data records are memory-mapped, so a slice reads only the
records it spans). ``pyedflib``, which the AnyPPG release uses, refuses EDF+D and truncated files
with a generic error and, when told not to check the size, returns zeros for a missing tail;
``edfio`` reads both and says what it found, so the checks here can name the problem:

* a discontinuous recording (EDF+D: its records' onsets leave gaps) is refused: windows would span
  the gaps;
* a truncated file (fewer data records than its header announces, or a partial last record) is
  refused: a partly copied night;
* a channel is found by the source's names, first exactly, then ignoring case and spaces; none
  found is an error listing the channels the file holds.

Physical units: ECG in V or uV is converted to mV (the unit the release's flatness threshold was
set for) unless the source's own units are asked for (``units="source"``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phewas.base.errors import InputError

TO_MV = {"v": 1e3, "mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "nv": 1e-6}


def _key(label: str) -> str:
    return "".join(label.lower().split())


@dataclass
class Channel:
    """One signal of a recording: its label, rate (Hz), physical unit and scale to mV (ECG)."""

    label: str
    fs: float
    unit: str
    scale: float = 1.0


class EdfRecording:
    """An EDF file opened for per-channel, per-block reads (see the module's text)."""

    def __init__(self, path):
        import edfio
        self.path = Path(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.edf = edfio.read_edf(self.path, lazy_load_data=True)
        except FileNotFoundError:
            raise InputError(self.path, "not found") from None
        except Exception as err:  # noqa: BLE001 - edfio raises many kinds on a file that is not EDF
            raise InputError(self.path, f"not a readable EDF file ({type(err).__name__}: {err})") from None
        short = [str(w.message) for w in caught if "data record" in str(w.message).lower()
                 or "truncated" in str(w.message).lower()]
        if short:
            raise InputError(self.path, f"truncated: {short[-1]} (a partly copied recording is not converted)")
        if not self.edf.is_continuous:
            raise InputError(self.path, "a discontinuous EDF+D recording (its data records leave gaps); "
                             "expected a continuous EDF or EDF+C")
        self.labels = tuple(self.edf.labels)
        self.duration_s = float(self.edf.duration)

    def channel(self, names: tuple[str, ...], what: str, *, aliases: bool = True, units: str = "mv") -> Channel:
        """The first of ``names`` the file holds (exactly, then with ``aliases`` ignoring case and
        spaces); an error listing the file's channels when none is there."""
        found = next((n for n in names if n in self.labels), None)
        if found is None and aliases:
            by_key = {_key(label): label for label in self.labels}
            found = next((by_key[_key(n)] for n in names if _key(n) in by_key), None)
        if found is None:
            raise InputError(self.path, f"no {what} channel ({' or '.join(names)}); channels: "
                             f"{', '.join(self.labels) or 'none'}")
        sig = self.edf.get_signal(found)
        unit = sig.physical_dimension.strip()
        scale = 1.0
        if what == "ECG" and units == "mv":
            scale = TO_MV.get(unit.lower(), 1.0)  # blank or unknown: taken as mV
        if not sig.sampling_frequency or sig.sampling_frequency <= 0:
            raise InputError(self.path, f"channel {found!r} has no sampling rate")
        return Channel(found, float(sig.sampling_frequency), unit, scale)

    def read(self, channel: Channel, start_s: float, stop_s: float) -> np.ndarray:
        """``channel``'s samples from ``start_s`` to ``stop_s`` (physical units, ECG scaled to mV
        unless the source's units were asked for), float64."""
        sig = self.edf.get_signal(channel.label)
        try:
            x = sig.get_data_slice(start_s, min(stop_s, self.duration_s))
        except (ValueError, OSError) as err:
            raise InputError(self.path, f"channel {channel.label!r} cannot be read from {start_s:g} s "
                             f"({type(err).__name__}: {err})") from None
        return np.asarray(x, np.float64) * channel.scale
