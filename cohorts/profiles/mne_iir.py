"""MNE-Python's zero-phase IIR filtering (``mne.filter.filter_data(..., method="iir")`` and
``notch_filter(..., method="iir")``), reproduced with SciPy and designed once per setting.

MNE designs a Butterworth filter with ``scipy.signal.iirfilter`` at the given order, estimates
how long it rings (its impulse response until it stays below 0.1% of its peak), pads each row at
both ends by that many samples (at most the row's length minus one) with MNE's
``"reflect_limited"`` padding (odd reflection about the end sample), runs SciPy's ``filtfilt`` /
``sosfiltfilt`` with no padding of their own and trims the padding off (``mne/filter.py``:
``construct_iir_filter``, ``estimate_ringing_samples``, ``_iir_filter``; ``mne/cuda.py``:
``_smart_pad``). The AnyPPG release calls MNE once per 10-s window, designing the filter and
estimating its ringing each time; here the design is cached and every row of a batch of windows
is filtered in one call, which gives the same numbers (``tests/cohorts/test_profiles.py``
compares them with MNE's own output on real recordings).

A notch at ``f`` Hz of width ``w`` is MNE's IIR notch: a 4th-order Butterworth band-stop from
``f - w/2 - 0.5`` to ``f + w/2 + 0.5`` Hz in second-order sections (MNE's default IIR parameters
with a transition bandwidth of 1 Hz).

Gramfort et al., "MNE software for processing MEG and EEG data", NeuroImage 86 (2014).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal as sps


def ringing_samples(system, max_try: int = 100000) -> int:
    """How many samples the filter ``system`` (``(b, a)`` or second-order sections) rings: MNE's
    ``estimate_ringing_samples``, which feeds an impulse in chunks of 1,000 samples and stops at
    the first chunk with no sample above 0.1% of the largest seen."""
    if isinstance(system, tuple):
        b, a = system
        zi = np.zeros(len(a) - 1)
    else:
        sos = system
        zi = np.zeros((len(sos), 2))
    chunk = 1000
    x = np.zeros(chunk)
    x[0] = 1
    last_good, thresh = chunk, 0.0
    for ii in range(int(np.ceil(max_try / chunk))):
        if isinstance(system, tuple):
            h, zi = sps.lfilter(b, a, x, zi=zi)
        else:
            h, zi = sps.sosfilt(sos, x, zi=zi)
        x[0] = 0
        h = np.abs(h)
        thresh = max(0.001 * np.max(h), thresh)
        idx = np.where(h > thresh)[0]
        if len(idx):
            last_good = idx[-1]
        else:
            return (ii - 1) * chunk + last_good
    return chunk * int(np.ceil(max_try / chunk))


@lru_cache(maxsize=64)
def design(fs: float, l_freq: float | None, h_freq: float | None, order: int, output: str):
    """``(system, padlen)`` of MNE's Butterworth IIR filter: a band-pass when both edges are
    given, a high-pass for ``l_freq`` alone, a low-pass for ``h_freq`` alone, a band-stop when
    ``l_freq > h_freq`` (as ``filter_data`` reads them)."""
    if l_freq is not None and h_freq is not None:
        btype, edges = ("bandstop", [h_freq, l_freq]) if l_freq > h_freq else ("bandpass", [l_freq, h_freq])
    elif l_freq is not None:
        btype, edges = "highpass", [l_freq]
    else:
        btype, edges = "lowpass", [h_freq]
    wn = np.asarray(edges, float) / (float(fs) / 2)
    system = sps.iirfilter(order, wn.item() if len(edges) == 1 else wn, btype=btype, ftype="butter", output=output)
    if output == "ba":
        system = (system[0], system[1])
    return system, ringing_samples(system)


def reflect_limited(x: np.ndarray, padlen: int) -> np.ndarray:
    """MNE's ``reflect_limited`` padding of the last axis by ``padlen`` at each end (odd
    reflection about the end samples; zeros beyond a row's length)."""
    n = x.shape[-1]
    zl = np.zeros(x.shape[:-1] + (max(padlen - n + 1, 0),), x.dtype)
    return np.concatenate([zl, 2 * x[..., :1] - x[..., padlen:0:-1], x, 2 * x[..., -1:] - x[..., -2:-padlen - 2:-1],
                           zl], axis=-1)


def filtfilt(x: np.ndarray, fs: float, l_freq: float | None, h_freq: float | None, order: int,
             output: str = "ba") -> np.ndarray:
    """Zero-phase filtering of each row of ``x`` (float64) as ``mne.filter.filter_data(x, fs,
    l_freq, h_freq, method="iir", iir_params=dict(order=order, ftype="butter", output=output))``."""
    x = np.asarray(x, np.float64)
    system, ringing = design(float(fs), l_freq, h_freq, int(order), output)
    n = x.shape[-1]
    padlen = min(ringing, n - 1)
    ext = reflect_limited(x, padlen) if padlen else x
    if output == "sos":
        y = sps.sosfiltfilt(system, ext, axis=-1, padlen=0)
    else:
        y = sps.filtfilt(system[0], system[1], ext, axis=-1, padlen=0)
    return np.ascontiguousarray(y[..., padlen:ext.shape[-1] - padlen])


def notch(x: np.ndarray, fs: float, freq: float, width: float = 1.0) -> np.ndarray:
    """MNE's IIR notch (``notch_filter(x, fs, freq, notch_widths=width, method="iir")``) of each
    row of ``x``: see the module's text."""
    return filtfilt(x, fs, freq + width / 2 + 0.5, freq - width / 2 - 0.5, 4, "sos")
