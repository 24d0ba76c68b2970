"""ECG window quality by Zhao & Zhang's simple heuristic fusion, as NeuroKit2's
``ecg_quality(x, sampling_rate, method="zhao2018", approach="simple")`` rates it, for many windows
at once.

Three indices per window (NeuroKit2 0.3, ``ecg/ecg_quality.py``): kSQI, the kurtosis (Pearson's);
pSQI, the share of 5-40 Hz power that lies in 5-15 Hz; basSQI, one minus the share of 0-40 Hz
power below 1 Hz. Powers integrate (trapezoid rule) a Welch spectrum of the demeaned window
(Hann segments of half the window, FFT of twice that, density scaling, no detrending), over
frequencies from ``4 fs / n`` up, as NeuroKit2's ``signal_power`` does. Each index is graded
optimal, suspicious or unqualified; two unqualified (or one unqualified and two suspicious) make
the window "Unacceptable". The pSQI grades depend on the fastest heart rate among the window's
R peaks (NeuroKit2's ``ecg_peaks``): below 130 bpm they are (0.5, 0.8) optimal and (0.4, 0.5)
suspicious, else (0.4, 0.7) and (0.3, 0.4). R peaks are found, with NeuroKit2 itself, only for
the windows whose verdict depends on that rate; a window on which that detection fails is
unacceptable, as the AnyPPG release treats a failed quality check.

Zhao Z, Zhang Y. "SQI quality evaluation mechanism of single-lead ECG signal based on simple
heuristic fusion and fuzzy comprehensive evaluation." Frontiers in Physiology 9:727 (2018).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import signal as sps
from scipy import stats

UNACCEPTABLE, BARELY, EXCELLENT = "Unacceptable", "Barely acceptable", "Excellent"


def _band_power(freq: np.ndarray, psd: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """NeuroKit2's ``_signal_power_instant_compute``: trapezoid over ``lo <= f < hi``, NaN for 0."""
    sel = (freq >= lo) & (freq < hi)
    power = np.trapezoid(psd[:, sel], freq[sel], axis=-1) if sel.any() else np.zeros(len(psd))
    return np.where(power == 0.0, np.nan, power)


def _spectrum(x: np.ndarray, fs: float, bands) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[-1]
    nperseg = int(n / 2)  # NeuroKit2's window of 1,024 s, shortened to half the signal
    freq, psd = sps.welch(x - x.mean(-1, keepdims=True), fs=fs, scaling="density", detrend=False,
                          nfft=2 * nperseg, average="mean", nperseg=nperseg, window="hann", axis=-1)
    lo, hi = min(b[0] for b in bands), max(b[1] for b in bands)
    keep = (freq >= 4 * fs / n) & (freq >= lo) & (freq <= hi)
    return freq[keep], psd[:, keep]


def sqi(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(kSQI, pSQI, basSQI)`` of each row of ``x`` (see the module's text)."""
    x = np.atleast_2d(np.asarray(x))
    k = stats.kurtosis(x, axis=-1, fisher=False)
    f, p = _spectrum(x, fs, [(5, 15), (5, 40)])
    with np.errstate(invalid="ignore", divide="ignore"):
        psqi = _band_power(f, p, 5, 15) / _band_power(f, p, 5, 40)
        f, p = _spectrum(x, fs, [(0, 1), (0, 40)])
        bas = 1 - _band_power(f, p, 0, 1) / _band_power(f, p, 0, 40)
    return k, psqi, bas


def _verdict(psqi, ksqi, bas, fast: bool) -> np.ndarray:
    l1, l2, l3 = (0.4, 0.7, 0.3) if fast else (0.5, 0.8, 0.4)
    p_cls = np.where((psqi > l1) & (psqi < l2), 2, np.where((psqi > l3) & (psqi < l1), 1, 0))
    k_cls = np.where(ksqi > 5, 2, 0)
    b_cls = np.where(bas >= 0.95, 2, np.where(bas < 0.9, 0, 1))
    cls = np.stack([p_cls, k_cls, b_cls])
    opt, sus, bad = (cls == 2).sum(0), (cls == 1).sum(0), (cls == 0).sum(0)
    return np.where((bad >= 2) | ((bad == 1) & (sus == 2)), UNACCEPTABLE,
                    np.where((opt >= 2) & (bad == 0), EXCELLENT, BARELY))


def _fast_rate(x: np.ndarray, fs: int) -> bool | None:
    """Whether the fastest beat among NeuroKit2's R peaks of ``x`` is at 130 bpm or more (None if
    the detection fails)."""
    import neurokit2 as nk
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, info = nk.ecg_peaks(x, sampling_rate=fs)
    except Exception:  # noqa: BLE001 - the release rates a window whose check fails as unacceptable
        return None
    peaks = info["ECG_R_Peaks"]
    rate = 60000.0 / (1000.0 / fs * np.min(np.diff(peaks))) if len(peaks) > 1 else 1
    return bool(rate >= 130)


def zhao2018(x: np.ndarray, fs: float) -> np.ndarray:
    """The verdict (``"Excellent"``, ``"Barely acceptable"`` or ``"Unacceptable"``) on each row of
    ``x``, a batch of cleaned ECG windows at ``fs`` Hz (see the module's text)."""
    x = np.atleast_2d(np.asarray(x))
    fs = int(fs)
    ksqi, psqi, bas = sqi(x, fs)
    slow, fast = _verdict(psqi, ksqi, bas, False), _verdict(psqi, ksqi, bas, True)
    out = slow.astype(object)
    for i in np.flatnonzero(slow != fast):
        rate_fast = _fast_rate(x[i], fs)
        out[i] = UNACCEPTABLE if rate_fast is None else (fast[i] if rate_fast else slow[i])
    return out.astype(str)


def acceptable(x: np.ndarray, fs: float) -> np.ndarray:
    """True where :func:`zhao2018` does not rate the window unacceptable (the release's check)."""
    return zhao2018(x, fs) != UNACCEPTABLE
