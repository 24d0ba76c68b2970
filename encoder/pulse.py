"""Classic pulse features of one preprocessed PPG window (125 Hz, 10 s, band-passed, z-scored).

Beats are found by neurokit2 (Elgendi et al. 2013, ``nk.ppg_findpeaks``); the fiducial points
of each beat follow pyPPG's definitions (Goda, Charlton & Behar 2024), written here for speed
(pyPPG's pinned dependencies cannot sit beside ours):

* onset: the minimum between a systolic peak and the previous one; a beat runs from its onset to
  the next;
* dicrotic notch: the local minimum after the systolic peak, or where the notch has faded into
  an inflection (a stiff artery), the maximum of the second derivative there (pyPPG's ``dn``);
* diastolic point: the maximum after the notch (pyPPG's ``dp``).

Per window, medians over its beats unless said otherwise. Windows are z-scored, so amplitudes are
in window standard deviations (ratios within the window; a perfusion index proper needs the
unfiltered DC level, which the store does not keep).
"""

from __future__ import annotations

import warnings

import numpy as np

FS = 125.0
FEATURES = {
    "heart_rate": "beats per minute, 60 / median beat interval",
    "sdnn_ms": "standard deviation of the beat intervals (ms)",
    "rmssd_ms": "root mean square of successive interval differences (ms)",
    "pulse_amplitude": "onset-to-peak amplitude (window SDs)",
    "amplitude_cv": "coefficient of variation of the beats' amplitudes (alternans, AF)",
    "pulse_width_s": "time above half amplitude (s)",
    "rise_time_s": "onset to systolic peak (s)",
    "notch_time_s": "systolic peak to dicrotic notch (s)",
    "notch_depth": "(peak - notch) / amplitude",
    "reflection_index": "(diastolic point - onset) / amplitude",
    "area_ratio": "area after the notch / area before it (inflection point area ratio)",
    "quality": "mean correlation of the beats with their average (template matching)",
}
NAMES = tuple(FEATURES)
MIN_BEATS = 3  # fewer complete beats: the window's features are NaN
RR_RANGE = (0.27, 2.2)  # seconds: 27-220 bpm


def find_peaks(x: np.ndarray, fs: float = FS) -> np.ndarray:
    """Systolic peaks (sample indices) by neurokit2's Elgendi detector; none where it finds no
    pulse wave (it raises on a flat window)."""
    import neurokit2 as nk
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            peaks = nk.ppg_findpeaks(x, sampling_rate=fs, method="elgendi")["PPG_Peaks"]
        except (IndexError, ValueError):
            return np.zeros(0, dtype=np.int64)
    return np.asarray(peaks, dtype=np.int64)


def window_features(x: np.ndarray, fs: float = FS, peaks: np.ndarray | None = None) -> np.ndarray:
    """The :data:`NAMES` features of one window, ``float64 [len(NAMES)]``, NaN where undefined
    (fewer than :data:`MIN_BEATS` complete beats)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(NAMES), np.nan)
    p = find_peaks(x, fs) if peaks is None else np.asarray(peaks, dtype=np.int64)
    if len(p) < 2:
        return out
    rr = np.diff(p) / fs
    rr = rr[(rr >= RR_RANGE[0]) & (rr <= RR_RANGE[1])]
    if len(rr) >= 2:
        out[0] = 60.0 / np.median(rr)
        out[1] = 1000.0 * np.std(rr, ddof=1)
        out[2] = 1000.0 * np.sqrt(np.mean(np.diff(rr) ** 2)) if len(rr) >= 3 else np.nan
    # onsets: the minimum between consecutive peaks; beat k runs onset[k] -> onset[k + 1], peak p[k + 1]
    gap = np.arange(int((p[1:] - p[:-1]).max()))[None, :]
    between = np.where(gap < (p[1:] - p[:-1])[:, None], x[np.minimum(p[:-1, None] + gap, len(x) - 1)], np.inf)
    onsets = p[:-1] + np.argmin(between, axis=1)
    if len(onsets) < MIN_BEATS + 1:
        return out
    start, end, peak = onsets[:-1], onsets[1:], p[1:len(onsets)]
    length = end - start
    ok = (length >= RR_RANGE[0] * fs) & (length <= RR_RANGE[1] * fs) & (peak > start) & (peak < end)
    start, end, peak, length = start[ok], end[ok], peak[ok], length[ok]
    if len(start) < MIN_BEATS:
        return out
    # one row per beat, padded: positions beyond a beat's end are masked
    width = int(length.max())
    idx = start[:, None] + np.arange(width)[None, :]
    inside = idx < end[:, None]
    beat = x[np.minimum(idx, len(x) - 1)]
    base = x[start][:, None]
    amp = x[peak] - x[start]
    good = amp > 0
    if good.sum() < MIN_BEATS:
        return out
    rel_peak = peak - start
    above = inside & (beat - base >= 0.5 * amp[:, None])
    out[[3, 5, 6]] = np.median(np.stack([amp, above.sum(axis=1) / fs, rel_peak / fs])[:, good], axis=1)
    out[4] = np.std(amp[good]) / np.mean(amp[good])
    # notch: search from 0.05 s after the peak to 60% of the way to the next onset
    col = np.arange(width)[None, :]
    lo = rel_peak + int(0.05 * fs)
    hi = rel_peak + np.maximum(((length - rel_peak) * 0.6).astype(np.int64), int(0.05 * fs) + 2)
    zone = (col >= lo[:, None]) & (col < np.minimum(hi, length - 1)[:, None])
    d1 = np.diff(beat, axis=1, prepend=beat[:, :1])
    local_min = zone & (d1 <= 0) & (np.roll(d1, -1, axis=1) > 0)
    has_min = local_min.any(axis=1)
    d2 = np.gradient(np.gradient(beat, axis=1), axis=1)
    notch = np.where(has_min, np.argmax(local_min, axis=1),
                     np.argmax(np.where(zone, d2, -np.inf), axis=1))
    valid = good & zone.any(axis=1)
    if valid.sum() >= MIN_BEATS:
        rows = np.arange(len(start))
        after = inside & (col >= notch[:, None])
        dia = np.argmax(np.where(after, beat, -np.inf), axis=1)
        lifted = np.where(inside, beat - base, 0.0)
        before_area = np.where(col < notch[:, None], lifted, 0.0).sum(axis=1)
        after_area = np.where(after, lifted, 0.0).sum(axis=1)
        v = valid & (before_area > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            shape = np.stack([(notch - rel_peak) / fs, (x[peak] - beat[rows, notch]) / amp,
                              (beat[rows, dia] - x[start]) / amp, after_area / before_area])
        out[7:11] = np.median(shape[:, v], axis=1)
    # template matching over fixed spans around the peaks
    pre, post = int(0.25 * fs), int(0.45 * fs)
    centre = peak[(peak - pre >= 0) & (peak + post <= len(x))]
    if len(centre) >= MIN_BEATS:
        seg = x[centre[:, None] + np.arange(-pre, post)[None, :]]
        seg = seg - seg.mean(axis=1, keepdims=True)
        tpl = seg.mean(axis=0)
        denom = np.linalg.norm(seg, axis=1) * np.linalg.norm(tpl)
        out[11] = float(np.mean(seg @ tpl / np.where(denom > 0, denom, np.inf)))
    return out


def windows_features(windows: np.ndarray, fs: float = FS) -> np.ndarray:
    """``[n, len(NAMES)]`` for ``[n, samples]`` windows."""
    windows = np.asarray(windows)
    out = np.full((len(windows), len(NAMES)), np.nan)
    for i, w in enumerate(windows):
        out[i] = window_features(w, fs)
    return out
