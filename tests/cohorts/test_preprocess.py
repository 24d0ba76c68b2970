import numpy as np
import pytest
from scipy import signal as sps

from cohorts.preprocess import ECG, PPG, cut_windows, invalid_mask, preprocess_record
from cohorts.sim.signals import Physiology, add_artefacts, beat_train, ecg_signal, ppg_signal


def beat_rate(window: np.ndarray, fs: float) -> float:
    """Beats per minute from the mean interval between systolic peaks."""
    peaks, _ = sps.find_peaks(window, distance=int(0.33 * fs), prominence=0.5)
    return 60.0 * (len(peaks) - 1) / (peaks[-1] - peaks[0]) * fs


def true_rate(beats, start_s, seconds=10.0):
    b = beats[(beats >= start_s) & (beats < start_s + seconds)]
    return 60.0 * (len(b) - 1) / (b[-1] - b[0])


def make_ppg(hr, fs, seconds=60, seed=0, **phys):
    rng = np.random.default_rng(seed)
    p = Physiology(hr=hr, **phys)
    beats, rr = beat_train(seconds, p, rng)
    return ppg_signal(beats, rr, seconds, p, rng, fs=fs), beats


@pytest.mark.parametrize("fs", [20.0, 62.5, 125.0, 250.0, 500.0, 2000.0])
@pytest.mark.parametrize("invert", [False, True])
def test_beat_rate_survives_preprocessing_at_any_rate(fs, invert):
    x, beats = make_ppg(hr=78, fs=fs, seed=int(fs))
    if invert:
        x = -x
    y, bad, pol = preprocess_record(x, fs, PPG, "ppg")
    assert pol == (-1 if invert else 1)
    assert abs(len(y) - 60 * 125) <= 2
    win, frac, starts = cut_windows(y, bad, PPG, np.arange(0, len(y) - 1250 + 1, 1250))
    assert win.shape[1] == 1250 and len(win) >= 5
    err = [beat_rate(w, 125.0) - true_rate(beats, s / 125.0) for w, s in zip(win, starts)]
    assert np.all(np.abs(err) < 3.0), err
    np.testing.assert_allclose(win.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(win.std(axis=1), 1, atol=1e-6)


def test_rate_survives_dropouts_clipping_and_motion():
    rng = np.random.default_rng(4)
    x, beats = make_ppg(hr=95, fs=125.0, seconds=120, seed=4)
    x = add_artefacts(x, 125.0, rng, motion_per_min=0, flat_per_min=0, nan_prob=0, clip_prob=0)
    x[3000:3400] = np.nan  # dropout
    x[6000:6500] = x[6000]  # sensor off
    hi = np.nanpercentile(x, 97)
    x = np.minimum(x, hi)  # clipping
    y, bad, _ = preprocess_record(x, 125.0, PPG, "ppg")
    assert bad[3000:3400].all() and bad[6010:6490].all()
    win, frac, starts = cut_windows(y, bad, PPG, np.arange(0, len(y) - 1250 + 1, 1250))
    assert 2500 not in starts and 1250 in starts  # window 2500-3750 is 32% NaN: rejected
    err = [beat_rate(w, 125.0) - true_rate(beats, s / 125.0) for w, s in zip(win, starts)]
    assert len(win) >= 8 and np.median(np.abs(err)) < 3.0, err


def test_invalid_mask_finds_nan_flat_and_clipping():
    x, _ = make_ppg(hr=70, fs=125.0, seconds=30)
    x[100:110] = np.nan
    x[500:900] = 0.3
    x[2000:2100] = np.maximum(x[2000:2100], 0)  # not a saturation at the record's extreme
    top = np.nanmax(x) + 1
    x[3000:3010] = top
    bad = invalid_mask(x, 125.0)
    assert bad[100:110].all() and bad[510:890].all() and bad[3000:3010].all()
    assert bad[1200:1800].mean() < 0.05


def test_window_rejection_threshold():
    y = np.random.default_rng(0).normal(size=5000)
    bad = np.zeros(5000, bool)
    bad[0:312] = True  # 24.96% of the first window
    bad[1250:1250 + 320] = True  # 25.6% of the second
    win, frac, starts = cut_windows(y, bad, PPG, np.array([0, 1250, 2500]))
    assert list(starts) == [0, 2500]


def test_ecg_polarity_corrected_and_rate_kept():
    rng = np.random.default_rng(2)
    p = Physiology(hr=66)
    beats, _ = beat_train(30, p, rng)
    e = -ecg_signal(beats, 30, p, rng, mains_hz=50.0)
    y, bad, pol = preprocess_record(e, 500.0, ECG, "ecg")
    assert pol == -1
    peaks, _ = sps.find_peaks(y, distance=150, height=np.percentile(y, 99) * 0.5)
    assert abs(60 / np.median(np.diff(peaks)) * 500 - 60 / np.mean(np.diff(beats))) < 2
    # 50 Hz hum removed by the notch
    f, pxx = sps.welch(y, fs=500, nperseg=2048)
    assert pxx[np.argmin(abs(f - 50))] < 1e-3 * pxx.max()
