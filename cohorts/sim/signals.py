"""Simulated lead-II ECG and PPG that share one train of beats.

Each beat is an R peak in the ECG and, one pulse-transit time later, a pulse in the PPG. Both
signals are impulse trains (one impulse per beat, weighted by the beat's amplitude) convolved with
a per-visit template, which keeps generation vectorised. The physiology that the templates and
the beat train encode (documented in ``truth.json`` by :mod:`cohorts.sim.population`):

* heart rate with respiratory sinus arrhythmia and slow drift;
* atrial fibrillation: beat intervals drawn independently (irregularly irregular), pulse
  amplitude following the preceding interval (Frank-Starling), no P wave, fibrillatory baseline;
* heart failure: faster, smaller pulse with a narrower systolic wave and pulsus alternans;
* anaemia: faster, hyperdynamic pulse;
* arterial stiffness (age and hypertension): an earlier, larger reflected wave and a weaker
  dicrotic wave, hence a shallower notch;
* respiration (baseline and amplitude modulation), baseline wander, white noise, mains hum,
  and artefacts: motion bursts, flat "sensor off" stretches, clipping and NaN runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

PPG_FS = 125.0
ECG_FS = 500.0


@dataclass
class Physiology:
    """Per-visit state that the waveform shows. Effects are 0 (absent) to 1 (fully present)."""

    hr: float = 72.0
    resp_hz: float = 0.25
    af: float = 0.0
    hf: float = 0.0
    anemia: float = 0.0
    stiffness: float = 0.0  # arbitrary units: 0 at age 50 without hypertension
    ptt: float = 0.22  # pulse transit time, R peak to pulse foot (s)
    amplitude: float = 1.0  # the pulse's size relative to the sensor's noise (simulated race)


def beat_train(duration: float, phys: Physiology, rng: np.random.Generator):
    """Beat times (s) in ``[0, duration)`` and the interval preceding each beat."""
    mean_rr = 60.0 / phys.hr
    n = int(duration / mean_rr * 1.6) + 20
    t_est = np.arange(n) * mean_rr
    drift = sps.lfilter([1.0], [1.0, -0.95], rng.normal(0.0, 0.01, n))
    sinus = 1.0 + 0.04 * np.sin(2 * np.pi * phys.resp_hz * t_est + rng.uniform(0, 2 * np.pi)) + drift
    irregular = rng.lognormal(0.0, 0.28, n)
    irregular /= irregular.mean()
    rr = mean_rr * ((1.0 - phys.af) * sinus + phys.af * irregular)
    rr = np.clip(rr, 0.28, 2.2)
    t = np.cumsum(rr) - rng.uniform(0.0, rr[0]) - rr[0]
    keep = (t >= -0.5) & (t < duration)
    return t[keep], rr[keep]


def _gauss(t, mu, sd, sd_after=None):
    """Gaussian bump; with ``sd_after`` the fall is slower than the rise (a pulse's upstroke is
    steeper than its decline)."""
    sd = np.where(t < mu, sd, sd if sd_after is None else sd_after)
    return np.exp(-0.5 * ((t - mu) / sd) ** 2)


def ppg_template(phys: Physiology, fs: float = PPG_FS) -> np.ndarray:
    """One pulse, from foot onwards (1.2 s)."""
    t = np.arange(0.0, 1.2, 1.0 / fs)
    s = phys.stiffness
    sys_sd = 0.05 * (1.0 - 0.25 * phys.hf)
    d_refl = np.clip(0.20 - 0.05 * s, 0.07, 0.26)
    r_amp = np.clip(0.32 + 0.16 * s, 0.15, 0.9)
    dic = np.clip(0.25 * (1.0 - 0.35 * s) * (1.0 - 0.4 * phys.hf), 0.02, 0.45)
    pulse = (_gauss(t, 0.13, sys_sd * 0.8, sys_sd * 1.4) + r_amp * _gauss(t, 0.13 + d_refl, 0.07)
             + dic * _gauss(t, 0.45, 0.06) + 0.12 * _gauss(t, 0.6, 0.2))
    pulse *= np.clip((1.2 - t) / 0.3, 0, 1)  # taper to zero
    return pulse / pulse.max()


def ecg_template(phys: Physiology, mean_rr: float, fs: float = ECG_FS):
    """One PQRST complex; returns ``(template, samples before the R peak)``."""
    pre = 0.3
    t = np.arange(-pre, 0.7, 1.0 / fs)
    qt = 0.4 * np.sqrt(mean_rr)
    p_amp = 0.12 * (1.0 - phys.af)
    beat = (p_amp * _gauss(t, -0.17, 0.025) - 0.10 * _gauss(t, -0.03, 0.01) + 1.0 * _gauss(t, 0, 0.011)
            - 0.25 * _gauss(t, 0.03, 0.012) + 0.3 * _gauss(t, qt - 0.08, 0.045))
    return beat, int(round(pre * fs))


def _impulses(times, amps, fs, n):
    idx = np.round(times * fs).astype(np.int64)
    out = np.zeros(n)
    ok = (idx >= 0) & (idx < n)
    np.add.at(out, idx[ok], amps[ok])
    return out


def _lowpass_noise(n, fs, cutoff, rng, sd=1.0):
    b, a = sps.butter(2, cutoff / (fs / 2))
    x = sps.lfilter(b, a, rng.normal(0.0, 1.0, n + int(fs)))[int(fs):]
    return sd * x / (x.std() + 1e-12)


def ppg_signal(beats, rr, duration, phys: Physiology, rng, fs=PPG_FS) -> np.ndarray:
    """Clean PPG (arbitrary units) plus respiration, wander and white noise."""
    n = int(round(duration * fs))
    mean_rr = 60.0 / phys.hr
    amp = (rr / mean_rr) ** 0.6 if phys.af > 0 else np.ones_like(rr)
    amp = amp * (1.0 + 0.15 * phys.hf * (-1.0) ** np.arange(len(rr)))  # pulsus alternans
    amp *= (1.0 - 0.45 * phys.hf) * (1.0 + 0.2 * phys.anemia) * phys.amplitude
    pad = int(fs)
    imp = _impulses(beats + phys.ptt + pad / fs, amp, fs, n + pad)
    x = sps.oaconvolve(imp, ppg_template(phys, fs))[pad:pad + n]
    t = np.arange(n) / fs
    resp = np.sin(2 * np.pi * phys.resp_hz * t)
    x = x * (1.0 + 0.08 * resp) + 0.12 * resp
    x += _lowpass_noise(n, fs, 0.05, rng, 0.15) + rng.normal(0.0, 0.02, n)
    return x


def ecg_signal(beats, duration, phys: Physiology, rng, fs=ECG_FS, mains_hz=60.0) -> np.ndarray:
    """Lead-II ECG in mV with baseline wander, mains hum and, in AF, fibrillatory waves."""
    n = int(round(duration * fs))
    beat, pre = ecg_template(phys, 60.0 / phys.hr, fs)
    pad = int(fs)
    imp = _impulses(beats + pad / fs, np.ones_like(beats), fs, n + pad)
    x = sps.oaconvolve(imp, beat)[pad + pre:pad + pre + n]
    t = np.arange(n) / fs
    x += 0.1 * np.sin(2 * np.pi * phys.resp_hz * t) + _lowpass_noise(n, fs, 0.1, rng, 0.08)
    x += rng.uniform(0.01, 0.06) * np.sin(2 * np.pi * mains_hz * t + rng.uniform(0, 6.3))
    x += rng.normal(0.0, 0.015, n)
    if phys.af > 0:
        b, a = sps.butter(2, [4.0 / (fs / 2), 8.0 / (fs / 2)], btype="band")
        f = sps.lfilter(b, a, rng.normal(0.0, 1.0, n))
        x += 0.05 * phys.af * f / (f.std() + 1e-12)
    return x


def add_artefacts(x, fs, rng, *, motion_per_min=0.4, flat_per_min=0.08, nan_prob=0.05,
                  clip_prob=0.04) -> np.ndarray:
    """Motion bursts, flat "sensor off" stretches, clipping and NaN runs, in place on a copy."""
    x = x.copy()
    n = len(x)
    minutes = n / fs / 60.0
    scale = np.nanstd(x) + 1e-9
    for _ in range(rng.poisson(motion_per_min * minutes)):
        length = int(rng.uniform(2, 8) * fs)
        start = rng.integers(0, max(1, n - length))
        burst = _lowpass_noise(length, fs, rng.uniform(1.0, 4.0), rng, rng.uniform(1.5, 4.0) * scale)
        x[start:start + length] += burst[: n - start]
    for _ in range(rng.poisson(flat_per_min * minutes)):
        length = int(rng.uniform(3, 30) * fs)
        start = rng.integers(0, max(1, n - length))
        x[start:start + length] = x[start]
    if rng.random() < clip_prob:
        hi = np.nanpercentile(x, 90)
        x = np.minimum(x, hi)
    if rng.random() < nan_prob:
        length = int(rng.uniform(1, 5) * fs)
        start = rng.integers(0, max(1, n - length))
        x[start:start + length] = np.nan
    return x
