"""The ``anyppg`` preprocessing profile: what the AnyPPG release's processor feeds its encoder,
window by window (``preprocessing/mc_med/data_processor.py``, ``MCMEDProcessor``).

Per record (or per overlap of a PPG record with an ECG record), in the release's order:

1. cut non-overlapping windows of ``int(10 fs)`` samples from the first sample (a shorter rest
   is dropped), the raw values as float32;
2. ECG polarity: each raw ECG window votes "inverted" when the median, over 2-s sliding windows
   of the filtered window, of the sample with the largest square is negative (NeuroKit2's
   ``ecg_invert`` rule); if more than half of the record's windows vote so, all its ECG is
   negated. PPG is never flipped;
3. drop a window with any non-finite sample (a pair when either side has one);
4. drop a window with more than 25% "flat" samples: the moving mean of ``|diff|`` over
   ``int(0.1 fs) - 1`` differences below 0.001 *in the record's own units*;
5. filter each window on its own with MNE's zero-phase IIR Butterworth filters
   (:mod:`cohorts.profiles.mne_iir`): PPG band-pass 0.5-8 Hz, order 3; ECG high-pass 0.5 Hz,
   order 5, then a notch at the mains frequency (49-51 Hz for 50 Hz);
6. drop pairs whose filtered ECG window NeuroKit2's Zhao 2018 check rates unacceptable
   (:mod:`cohorts.profiles.ecg_quality`);
7. resample with ``scipy.signal.resample_poly`` (its defaults: a Kaiser-windowed FIR, zero
   padding at the ends) to 125 Hz (PPG) and 500 Hz (ECG);
8. z-score each window: ``(x - mean) / (std + 1e-8)``.

Differences from the release, each kept on purpose and documented in ``docs/methods.md``: the
release drops a whole visit when an overlap gives one more PPG than ECG window (its arrays do not
broadcast); here the pair count is the smaller of the two. It drops records whose header time has
no milliseconds (its ``strptime`` format needs them); here every record is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from . import mne_iir
from .ecg_quality import acceptable

PPG_FS, ECG_FS, WINDOW_S = 125, 500, 10.0
PPG_BAND, PPG_ORDER = (0.5, 8.0), 3
ECG_HIGHPASS, ECG_ORDER = 0.5, 5
FLAT_WINDOW_S, FLAT_CHANGE, FLAT_TOLERATE = 0.1, 0.001, 0.25
INVERT_SHARE, INVERT_WINDOW_S = 0.5, 2.0
EPS = 1e-8


def cut(x: np.ndarray, fs: float) -> np.ndarray:
    """The release's windows of ``x``: ``[k, int(10 fs)]`` float32 from the first sample."""
    w = int(WINDOW_S * fs)
    k = len(x) // w if w > 0 else 0
    return np.asarray(x[:k * w], np.float32).reshape(k, w)


def flat_share(windows: np.ndarray, fs: float) -> np.ndarray:
    """Share of each window's samples whose moving mean of ``|diff|`` over ``int(0.1 fs) - 1``
    differences lies below 0.001 (the release's ``detect_flat_in_windows``, row by row with the
    same ``np.convolve``, so ties at the threshold fall the same way)."""
    size = int(FLAT_WINDOW_S * fs) - 1
    kernel = np.ones(size)
    diff = np.abs(np.diff(windows, axis=1))
    if len(windows) == 0:
        return np.zeros(0)
    return np.array([np.mean(np.convolve(d, kernel, mode="valid") / size < FLAT_CHANGE) for d in diff])


def clean_ppg(windows: np.ndarray, fs: float) -> np.ndarray:
    """The release's ``ppg_clean_elgendi_mne``: 0.5-8 Hz, order 3, per window; float32."""
    return mne_iir.filtfilt(windows, fs, *PPG_BAND, PPG_ORDER, "ba").astype(np.float32)


def clean_ecg(windows: np.ndarray, fs: float, notch_hz: float | None = 50.0) -> np.ndarray:
    """The release's ``ecg_clean_nk_mne``: high-pass 0.5 Hz, order 5, then the mains notch, per
    window; float32. ``notch_hz`` 0 or None: no notch (the release always notches 50 Hz)."""
    y = mne_iir.filtfilt(windows, fs, ECG_HIGHPASS, None, ECG_ORDER, "ba")
    if notch_hz and notch_hz + 1.0 < fs / 2:
        y = mne_iir.notch(y, fs, notch_hz)
    return y.astype(np.float32)


def _largest_square_values(y: np.ndarray, window: int) -> np.ndarray:
    """For each sliding window of ``window`` samples of the 1-D ``y``, the value whose square is
    largest (the first one when two tie), as ``take_along_axis(..., argmax(square))``."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d
    n = len(y) - window + 1
    if n <= 0:
        return np.zeros(0)
    # output i covers y[i : i + window] with the filters' origin at -(window // 2)
    hi = maximum_filter1d(y, window, origin=-(window // 2))
    lo = minimum_filter1d(y, window, origin=-(window // 2))
    hi, lo = hi[:n], lo[:n]
    out = np.where(hi > -lo, hi, lo)
    ties = np.flatnonzero(hi == -lo)
    if len(ties):
        view = np.lib.stride_tricks.sliding_window_view(y, window)
        for i in ties:
            out[i] = view[i][np.argmax(np.square(view[i]))]
    return out


def ecg_inverted_votes(raw: np.ndarray, fs: float, notch_hz: float | None = 50.0) -> np.ndarray:
    """Each raw ECG window's vote that the lead is inverted (NeuroKit2's ``ecg_invert`` check
    as the release runs it: on the window filtered by :func:`clean_ecg` at ``int(fs)`` Hz)."""
    fs = int(fs)
    y = clean_ecg(raw, fs, notch_hz) if len(raw) else raw
    window = int(INVERT_WINDOW_S * fs)
    votes = np.zeros(len(raw), bool)
    for i, row in enumerate(y):
        if not np.isfinite(row).all():
            continue  # NaN median: not inverted
        vals = _largest_square_values(row, window)
        votes[i] = len(vals) > 0 and np.median(vals) < 0
    return votes


def resample(windows: np.ndarray, fs: float, target: int) -> np.ndarray:
    """``scipy.signal.resample_poly(windows, target, fs, axis=-1)`` with its defaults. The release
    passes whole rates (its sources' are); a rate with a fraction (a device's 67.4 Hz) is
    resampled by the nearest ratio of small integers, and the result cut to
    ``round(L * target / fs)`` samples, a window cut as 10 s (``int(10 fs)`` samples) to exactly
    ``10 * target``."""
    n = int(round(windows.shape[1] * target / fs))
    if windows.shape[1] == int(WINDOW_S * fs):
        n = int(WINDOW_S * target)
    if len(windows) == 0:
        return np.zeros((0, n), np.float32)
    if float(fs).is_integer():
        return sps.resample_poly(windows, target, int(fs), axis=-1)
    ratio = Fraction(target / fs).limit_denominator(1000)
    y = sps.resample_poly(windows, ratio.numerator, ratio.denominator, axis=-1)
    return y[..., :n] if y.shape[-1] >= n else np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])], mode="edge")


def zscore(windows: np.ndarray) -> np.ndarray:
    """``(x - mean) / (std + 1e-8)`` per row, as the release's ``data_normalizer``."""
    mean, std = windows.mean(axis=-1, keepdims=True), windows.std(axis=-1, keepdims=True)
    return (windows - mean) / (std + EPS)


@dataclass
class Kept:
    """What the profile kept of one record (or one PPG-ECG overlap).

    ``index``: the kept windows' positions among the record's windows (window ``i`` starts at
    sample ``i * int(10 fs)``); ``ppg`` float32 ``[k, 1250]`` (and ``ecg`` ``[k, 5000]`` for
    pairs); ``flat`` (and ``flat_ecg``): each kept window's flat share; ``windows``: how many
    windows the record gave; ``dropped``: windows dropped, by reason; ``inverted``: whether the
    ECG was negated (pairs).
    """

    index: np.ndarray
    ppg: np.ndarray
    flat: np.ndarray
    windows: int
    dropped: dict = field(default_factory=dict)
    ecg: np.ndarray | None = None
    flat_ecg: np.ndarray | None = None
    inverted: bool = False


def screen(raw: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Steps 3 and 4 on raw PPG windows ``[n, L]``: ``(keep [n] bool, flat share [n] (NaN where
    not finite), dropped by reason)``."""
    finite = np.isfinite(raw).all(axis=1)
    flat = np.full(len(raw), np.nan)
    flat[finite] = flat_share(raw[finite], fs)
    keep = finite & (flat <= FLAT_TOLERATE)
    return keep, flat, {"non_finite": int((~finite).sum()), "flat": int((finite & ~keep).sum())}


def prepare_ppg(raw: np.ndarray, fs: float) -> np.ndarray:
    """Steps 5, 7 and 8 on raw PPG windows ``[n, L]`` that passed :func:`screen`: float32
    ``[n, round(L * 125 / fs)]``."""
    if len(raw) == 0:
        return np.zeros((0, int(round(raw.shape[1] * PPG_FS / fs))), np.float32)
    return zscore(resample(clean_ppg(raw, fs), fs, PPG_FS)).astype(np.float32)


def ppg_windows(x: np.ndarray, fs: float) -> Kept:
    """The PPG windows the release keeps of a record ``x`` at ``fs`` Hz, preprocessed (steps 1, 3,
    4, 5, 7 and 8 of the module's text)."""
    raw = cut(x, fs)
    keep, flat, dropped = screen(raw, fs)
    ppg = prepare_ppg(raw[keep], fs) if keep.any() else np.zeros((0, int(WINDOW_S * PPG_FS)), np.float32)
    return Kept(np.flatnonzero(keep), ppg, flat[keep], len(raw), dropped)


def pair_windows(ppg: np.ndarray, ppg_fs: float, ecg: np.ndarray, ecg_fs: float,
                 notch_hz: float | None = 50.0) -> Kept:
    """The PPG-ECG pairs the release keeps of two signals covering the same span (the overlap of
    a PPG and an ECG record), preprocessed (every step of the module's text)."""
    p_raw, e_raw = cut(ppg, ppg_fs), cut(ecg, ecg_fs)
    n = min(len(p_raw), len(e_raw))
    return window_pairs(p_raw[:n], ppg_fs, e_raw[:n], ecg_fs, notch_hz)


def ecg_inverted(votes: np.ndarray) -> bool:
    """The release's decision from a record's votes (:func:`ecg_inverted_votes`): more than half."""
    return bool(len(votes) and votes.sum() / len(votes) > INVERT_SHARE)


def window_pairs(p_raw: np.ndarray, ppg_fs: float, e_raw: np.ndarray, ecg_fs: float,
                 notch_hz: float | None = 50.0, inverted: bool | None = None) -> Kept:
    """Steps 2-8 on raw windows already cut, ``[n, int(10 fs)]`` each side, row ``i`` of one the
    same moment as row ``i`` of the other. ``inverted``: the record's polarity decided elsewhere
    (a record read in blocks votes over all of them); None decides it from these windows."""
    n = len(p_raw)
    if inverted is None:
        inverted = ecg_inverted(ecg_inverted_votes(e_raw, ecg_fs, notch_hz))
    if inverted:
        e_raw = -e_raw
    finite = np.isfinite(p_raw).all(axis=1) & np.isfinite(e_raw).all(axis=1)
    flat_p, flat_e = np.full(n, np.nan), np.full(n, np.nan)
    flat_p[finite], flat_e[finite] = flat_share(p_raw[finite], ppg_fs), flat_share(e_raw[finite], ecg_fs)
    not_flat = finite & (flat_p <= FLAT_TOLERATE) & (flat_e <= FLAT_TOLERATE)
    idx = np.flatnonzero(not_flat)
    p_clean = clean_ppg(p_raw[idx], ppg_fs) if len(idx) else p_raw[idx]
    e_clean = clean_ecg(e_raw[idx], ecg_fs, notch_hz) if len(idx) else e_raw[idx]
    good = acceptable(e_clean, ecg_fs) if len(idx) else np.zeros(0, bool)
    idx, p_clean, e_clean = idx[good], p_clean[good], e_clean[good]
    w_p, w_e = int(WINDOW_S * PPG_FS), int(WINDOW_S * ECG_FS)
    p_out = zscore(resample(p_clean, ppg_fs, PPG_FS)) if len(idx) else np.zeros((0, w_p), np.float32)
    e_out = zscore(resample(e_clean, ecg_fs, ECG_FS)) if len(idx) else np.zeros((0, w_e), np.float32)
    return Kept(idx, p_out.astype(np.float32), flat_p[idx], n,
                {"non_finite": int((~finite).sum()), "flat": int((finite & ~not_flat).sum()),
                 "ecg_quality": int((~good).sum())}, ecg=e_out.astype(np.float32), flat_ecg=flat_e[idx],
                inverted=inverted)


def whole_examples(raw: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Examples ``[n, L]`` of any duration as the release's embedding step feeds them: the
    profile's per-window steps (finite, flat, 0.5-8 Hz) on each whole example at its own rate,
    then ``extract_emb.py``'s Fourier resampling (``scipy.signal.resample``) to 1,250 samples,
    z-scored. Returns ``(keep [n] bool, windows float32 [kept, 1250], dropped by reason)``."""
    raw = np.asarray(raw, np.float32)
    keep, _, dropped = screen(raw, fs)
    if not keep.any():
        return keep, np.zeros((0, int(WINDOW_S * PPG_FS)), np.float32), dropped
    y = sps.resample(clean_ppg(raw[keep], fs), int(WINDOW_S * PPG_FS), axis=-1)
    return keep, zscore(y).astype(np.float32), dropped
