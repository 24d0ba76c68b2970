"""Pulse features of preprocessed windows: heart rate against the simulator's known beats,
variability against neurokit2's own ``hrv_time``, every beat-shape feature against a slow
per-beat loop of the same definitions, and the physiology they must tell apart."""

import numpy as np
import pytest

from cohorts.preprocess import PPG, cut_windows, preprocess_record
from cohorts.sim.signals import Physiology, beat_train, ppg_signal
from encoder.pulse import FS, NAMES, find_peaks, window_features, windows_features


def windows(phys, n=6, seed=0, seconds=70.0):
    """Windows of a simulated record, preprocessed as ``extract-segments`` does; and the true
    mean beat rate."""
    rng = np.random.default_rng(seed)
    beats, rr = beat_train(seconds, phys, rng)
    x = ppg_signal(beats, rr, seconds, phys, rng)
    y, bad, _ = preprocess_record(x, FS, PPG, "ppg")
    w, _, _ = cut_windows(y, bad, PPG, np.arange(n) * PPG.window + int(2 * FS))
    return w, 60.0 / np.mean(rr)


def col(name):
    return NAMES.index(name)


@pytest.mark.parametrize("hr", [55.0, 75.0, 110.0])
def test_heart_rate_matches_the_simulated_beats(hr):
    w, true = windows(Physiology(hr=hr))
    f = windows_features(w)
    assert np.all(np.abs(f[:, col("heart_rate")] - true) < 0.05 * true)


def test_variability_equals_neurokit2_hrv_time():
    import neurokit2 as nk
    w, _ = windows(Physiology(hr=80, af=1.0), seed=1)
    for x in w:
        peaks = find_peaks(x)
        rr = np.diff(peaks) / FS
        assert ((rr >= 0.27) & (rr <= 2.2)).all()  # no interval dropped: same intervals as nk's
        h = nk.hrv_time(peaks, sampling_rate=int(FS))
        f = window_features(x, peaks=peaks)
        assert f[col("sdnn_ms")] == pytest.approx(h["HRV_SDNN"].iloc[0], rel=1e-9)
        assert f[col("rmssd_ms")] == pytest.approx(h["HRV_RMSSD"].iloc[0], rel=1e-9)


def slow_beats(x, peaks):
    """The beat-shape definitions, one beat at a time in plain Python."""
    onsets = [a + int(np.argmin(x[a:b])) for a, b in zip(peaks[:-1], peaks[1:])]
    rows = []
    for k in range(len(onsets) - 1):
        s, e, p = onsets[k], onsets[k + 1], peaks[k + 1]
        if not (0.27 * FS <= e - s <= 2.2 * FS and s < p < e):
            continue
        beat = x[s:e] - x[s]
        amp = x[p] - x[s]
        if amp <= 0:
            continue
        rp = p - s
        lo, hi = rp + int(0.05 * FS), rp + max(int((e - s - rp) * 0.6), int(0.05 * FS) + 2)
        hi = min(hi, e - s - 1)
        notch = None
        for i in range(lo, hi):  # the first local minimum
            if x[s + i] - x[s + i - 1] <= 0 and x[s + i + 1] - x[s + i] > 0:
                notch = i
                break
        if notch is None and hi > lo:  # else the second derivative's maximum
            d2 = np.gradient(np.gradient(x[s:e]))
            notch = lo + int(np.argmax(d2[lo:hi]))
        row = {"amp": amp, "rise": rp / FS, "width": np.sum(beat >= 0.5 * amp) / FS}
        if notch is not None:
            dia = notch + int(np.argmax(beat[notch:]))
            before, after = beat[:notch].sum(), beat[notch:].sum()
            if before > 0:
                row |= {"notch_time": (notch - rp) / FS, "depth": (amp - beat[notch]) / amp,
                        "ri": beat[dia] / amp, "area": after / before}
        rows.append(row)
    return rows


@pytest.mark.parametrize("phys", [Physiology(), Physiology(stiffness=2.0), Physiology(hr=90, hf=0.8),
                                  Physiology(hr=85, af=1.0)])
def test_beat_shape_features_equal_a_slow_loop(phys):
    w, _ = windows(phys, n=3, seed=2)
    for x in w:
        peaks = find_peaks(x)
        f = window_features(x, peaks=peaks)
        rows = slow_beats(x, peaks)
        amps = np.array([r["amp"] for r in rows])
        assert f[col("pulse_amplitude")] == pytest.approx(np.median(amps))
        assert f[col("amplitude_cv")] == pytest.approx(amps.std() / amps.mean())
        assert f[col("rise_time_s")] == pytest.approx(np.median([r["rise"] for r in rows]))
        assert f[col("pulse_width_s")] == pytest.approx(np.median([r["width"] for r in rows]))
        shaped = [r for r in rows if "ri" in r]
        for name, key in (("notch_time_s", "notch_time"), ("notch_depth", "depth"), ("reflection_index", "ri"),
                          ("area_ratio", "area")):
            assert f[col(name)] == pytest.approx(np.median([r[key] for r in shaped])), name


def test_features_tell_the_simulated_physiology_apart():
    def med(phys, seed):
        return np.nanmedian(windows_features(windows(phys, seed=seed)[0]), axis=0)
    base, af = med(Physiology(), 3), med(Physiology(af=1.0), 3)
    assert af[col("sdnn_ms")] > 3 * base[col("sdnn_ms")] and af[col("rmssd_ms")] > 3 * base[col("rmssd_ms")]
    assert af[col("amplitude_cv")] > 2 * base[col("amplitude_cv")]  # amplitude follows the interval
    stiff = med(Physiology(stiffness=2.0), 3)  # larger, earlier reflected wave
    assert stiff[col("reflection_index")] != pytest.approx(base[col("reflection_index")], abs=0.05)
    assert base[col("quality")] > 0.95


def test_windows_without_a_pulse_give_nan_not_errors():
    rng = np.random.default_rng(4)
    flat = np.zeros(PPG.window)
    noise = rng.normal(size=PPG.window)
    f = windows_features(np.stack([flat, noise]))
    assert f.shape == (2, len(NAMES)) and np.isnan(f[0]).all()
    assert not (f[1, col("quality")] > 0.9)  # noise does not look like a pulse (NaN or low)
