"""Signal preprocessing of the published AnyPPG pipeline, made to hold on real monitor data.

Per record: mark invalid samples (NaN, flat "sensor off" stretches, clipping), bridge them by
linear interpolation, resample to the target rate (polyphase, any source rate), filter with
zero-phase Butterworth band-passes (PPG 0.5-8 Hz; ECG 0.5-40 Hz plus a mains notch), and correct
polarity. Windows are then cut, rejected when more than ``max_invalid`` of their samples were
invalid, and z-scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps
from scipy import stats


@dataclass(frozen=True)
class ChannelSpec:
    fs: float  # target rate
    band: tuple[float, float]
    notch_hz: float | None = None
    window_s: float = 10.0

    @property
    def window(self) -> int:
        return int(round(self.fs * self.window_s))


PPG = ChannelSpec(fs=125.0, band=(0.5, 8.0))
ECG = ChannelSpec(fs=500.0, band=(0.5, 40.0), notch_hz=50.0)


def invalid_mask(x: np.ndarray, fs: float, flat_window_s: float = 0.1, flat_rel: float = 0.02,
                 clip_run: int = 3) -> np.ndarray:
    """True where a sample is NaN, on a flat stretch or clipped.

    Flat: the moving mean of ``|diff|`` over ``flat_window_s`` is below ``flat_rel`` times its
    median over the record. Clipped: runs of at least ``clip_run`` samples at the record's
    extreme values (ADC saturation).
    """
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.all():
        return bad
    d = np.abs(np.diff(x, prepend=x[0]))
    d[~np.isfinite(d)] = 0.0
    w = max(1, int(round(flat_window_s * fs)))
    activity = np.convolve(d, np.ones(w) / w, mode="same")
    ref = np.median(activity[~bad]) if (~bad).any() else 0.0
    bad |= activity <= max(flat_rel * ref, 1e-12)
    finite = x[np.isfinite(x)]
    for extreme in (finite.max(), finite.min()):
        at = np.isclose(x, extreme, rtol=0, atol=1e-9 * max(1.0, abs(extreme)))
        runs = np.convolve(at.astype(np.int32), np.ones(clip_run, np.int32), mode="same") >= clip_run
        # widen each detected run back to its full extent
        bad |= at & (runs | np.roll(runs, 1) | np.roll(runs, -1))
    return bad


def bridge(x: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Linear interpolation across invalid samples (edges held), so filters see no NaN."""
    x = np.asarray(x, dtype=np.float64).copy()
    good = ~bad
    if not good.any():
        return np.zeros_like(x)
    idx = np.arange(len(x))
    x[bad] = np.interp(idx[bad], idx[good], x[good])
    return x


@lru_cache(maxsize=64)
def _polyphase_filter(up: int, down: int) -> np.ndarray:
    """``resample_poly``'s own anti-aliasing filter (its default design), designed once per ratio."""
    max_rate = max(up, down)
    return sps.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def resample(x: np.ndarray, fs: float, target: float) -> np.ndarray:
    """Polyphase resampling from ``fs`` to ``target`` (rational approximation of the ratio), along
    the last axis. The signal is extended beyond its ends by a line, not zeros: a raw PPG sits on
    a large offset, and zeros would make the filter ring for a second at each end (which swamps
    the pulse of a 10-s smartphone record)."""
    if abs(fs - target) < 1e-9:
        return x
    ratio = Fraction(target / fs).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    return sps.resample_poly(x, up, down, axis=-1, window=_polyphase_filter(up, down), padtype="line")


def resample_mask(bad: np.ndarray, fs: float, target: float, n_out: int) -> np.ndarray:
    """Nearest-sample map of an invalid mask onto the resampled time grid."""
    src = np.minimum((np.arange(n_out) * fs / target).astype(np.int64), len(bad) - 1)
    return bad[src]


@lru_cache(maxsize=64)
def _band_filter(fs: float, lo: float, hi: float) -> np.ndarray:
    nyq = fs / 2
    return sps.butter(4, [lo / nyq, min(hi, 0.9 * nyq) / nyq], btype="band", output="sos")


@lru_cache(maxsize=16)
def _notch_filter(notch_hz: float, fs: float):
    return sps.iirnotch(notch_hz, Q=30.0, fs=fs)


def bandpass(x: np.ndarray, spec: ChannelSpec) -> np.ndarray:
    """Zero-phase Butterworth band-pass (order 4), then a zero-phase notch at ``spec.notch_hz``
    (mains hum; none when it is 0 or None, or too close to the Nyquist frequency); along the last
    axis."""
    nyq = spec.fs / 2
    n = x.shape[-1]
    y = sps.sosfiltfilt(_band_filter(spec.fs, *spec.band), x, axis=-1) if n > 27 else \
        x - x.mean(axis=-1, keepdims=True)
    if spec.notch_hz and spec.notch_hz < 0.95 * nyq and n > 9:
        b, a = _notch_filter(spec.notch_hz, spec.fs)
        y = sps.filtfilt(b, a, y, axis=-1)
    return y


def ecg_polarity(x: np.ndarray) -> int:
    """+1 if R peaks point up, -1 if the lead is inverted (the larger tail of the filtered ECG)."""
    hi, lo = np.percentile(x, [99.5, 0.5])
    med = np.median(x)
    return 1 if (hi - med) >= (med - lo) else -1


def ppg_polarity(x: np.ndarray) -> int:
    """+1 if pulses point up, by a vote of three signs of an upright pulse wave: systolic peaks
    stand further above the median than troughs lie below it, the signal is positively skewed,
    and the upstroke is steeper than the decline (largest rise > largest fall)."""
    if x.std() == 0:
        return 1
    hi, lo = np.percentile(x, [98, 2])
    med = np.median(x)
    d = np.diff(x)
    dhi, dlo = np.percentile(d, [99, 1])
    votes = np.sign([(hi - med) - (med - lo), stats.skew(x), dhi + dlo])
    return 1 if votes.sum() >= 0 else -1


def preprocess_record(x: np.ndarray, fs: float, spec: ChannelSpec, kind: str):
    """Return ``(y, bad, polarity)`` on the ``spec.fs`` grid."""
    bad = invalid_mask(x, fs)
    y = resample(bridge(x, bad), fs, spec.fs)
    bad = resample_mask(bad, fs, spec.fs, len(y))
    y = bandpass(y, spec)
    pol = ecg_polarity(y[~bad] if (~bad).any() else y) if kind == "ecg" else \
        ppg_polarity(y[~bad] if (~bad).sum() > 2 else y)
    return y * pol, bad, pol


def _ppg_polarities(Y: np.ndarray) -> np.ndarray:
    """:func:`ppg_polarity` of each row of ``Y``, computed for all rows at once."""
    hi, lo = np.percentile(Y, [98, 2], axis=1)
    med = np.median(Y, axis=1)
    dhi, dlo = np.percentile(np.diff(Y, axis=1), [99, 1], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        skew = np.nan_to_num(stats.skew(Y, axis=1))
    votes = np.sign((hi - med) - (med - lo)) + np.sign(skew) + np.sign(dhi + dlo)
    return np.where((Y.std(axis=1) == 0) | (votes >= 0), 1, -1)


def preprocess_rows(X: np.ndarray, fs: float, spec: ChannelSpec = PPG) -> tuple[np.ndarray, np.ndarray]:
    """:func:`preprocess_record` of each row of ``X`` (PPG records of equal length), the filters
    run on all rows at once: ``(Y [k, m], bad [k, m])``, each row what :func:`preprocess_record`
    gives for it (``tests/cohorts/test_preprocess.py`` checks that they are equal)."""
    X = np.asarray(X, dtype=np.float64)
    bad = np.stack([invalid_mask(x, fs) for x in X]) if len(X) else np.zeros(X.shape, bool)
    bridged = X.copy()
    for i in np.flatnonzero(bad.any(axis=1)):
        bridged[i] = bridge(X[i], bad[i])
    Y = bandpass(resample(bridged, fs, spec.fs), spec)
    bad = bad[:, np.minimum((np.arange(Y.shape[1]) * fs / spec.fs).astype(np.int64), X.shape[1] - 1)]
    polarity = np.ones(len(Y), dtype=np.int64)
    clean = ~bad.any(axis=1)
    if clean.any():
        polarity[clean] = _ppg_polarities(Y[clean])
    for i in np.flatnonzero(~clean):
        valid = ~bad[i]
        polarity[i] = ppg_polarity(Y[i][valid] if valid.sum() > 2 else Y[i])
    return Y * polarity[:, None], bad


def zscore(windows: np.ndarray) -> np.ndarray:
    """z-score each row; rows with (near) zero variance stay zero."""
    mu = windows.mean(axis=-1, keepdims=True)
    sd = windows.std(axis=-1, keepdims=True)
    return np.where(sd > 1e-8, (windows - mu) / np.maximum(sd, 1e-8), 0.0)


def cut_windows(y: np.ndarray, bad: np.ndarray, spec: ChannelSpec, starts: np.ndarray,
                max_invalid: float = 0.25):
    """The windows at ``starts`` that are kept: at most ``max_invalid`` of their samples invalid
    and not flat. Returns ``(windows [k, window] z-scored, their invalid fractions [k], their start
    samples [k])``; starts whose window runs past the signal are dropped first."""
    w = spec.window
    starts = np.asarray(starts, dtype=np.int64)
    starts = starts[(starts >= 0) & (starts + w <= len(y))]
    if len(starts) == 0:
        return np.zeros((0, w)), np.zeros(0), starts
    idx = starts[:, None] + np.arange(w)[None, :]
    frac = bad[idx].mean(axis=1)
    raw = y[idx]
    keep = (frac <= max_invalid) & (raw.std(axis=1) > 1e-8)
    return zscore(raw[keep]), frac[keep], starts[keep]
