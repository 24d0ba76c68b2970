import json

import numpy as np
import polars as pl
import wfdb
from scipy import signal as sps

from phewas.sim.signals import Physiology, beat_train, ecg_signal, ppg_signal


def test_layout_and_truth(sim_data):
    visits = pl.read_csv(sim_data / "visits.csv", infer_schema_length=0)
    assert len(visits.columns) == 33 and visits.columns[:2] == ["MRN", "CSN"]
    truth = json.loads((sim_data / "truth.json").read_text())
    assert truth["injected"]["427.21"] > 0 and all(isinstance(v, float) for v in truth["injected"].values())
    assert not set(truth["injected"]) & set(truth["related"])
    heads = list((sim_data / "waveforms").glob("*/*/Pleth/*_1.hea"))
    assert heads
    csn = heads[0].parent.parent.name
    assert heads[0].parent.parent.parent.name == f"{int(csn) % 1000:03d}"
    # codes come in several spellings
    codes = pl.read_csv(sim_data / "pmh.csv", infer_schema_length=0)["Code"]
    assert codes.str.contains(r"\.").any() and (~codes.str.contains(r"\.")).any()


def test_simulation_is_seeded(tmp_path):
    from phewas.sim import PopulationConfig, simulate_population
    a = simulate_population(PopulationConfig(patients=30, seed=5))
    b = simulate_population(PopulationConfig(patients=30, seed=5))
    c = simulate_population(PopulationConfig(patients=30, seed=6))
    assert a[0].equals(b[0]) and a[1].equals(b[1]) and not a[0].equals(c[0])


def test_ppg_pulses_follow_r_peaks_by_transit_time():
    rng = np.random.default_rng(0)
    phys = Physiology(hr=70, ptt=0.25)
    beats, rr = beat_train(60, phys, rng)
    ecg = ecg_signal(beats, 60, phys, rng)
    ppg = ppg_signal(beats, rr, 60, phys, rng)
    r, _ = sps.find_peaks(ecg, distance=150, height=0.6)
    p, _ = sps.find_peaks(ppg, distance=50, prominence=0.3)
    r_t, p_t = r / 500.0, p / 125.0
    lags = [p_t[p_t > t][0] - t for t in r_t[:-2] if (p_t > t).any()]
    # foot + transit + time to systolic peak (0.13 s)
    assert abs(np.median(lags) - (0.25 + 0.13)) < 0.03
    assert abs(len(r) - len(beats[beats >= 0])) <= 2


def test_af_is_irregular_and_sinus_is_not():
    rng = np.random.default_rng(1)
    cv = {}
    for af in (0.0, 1.0):
        beats, _ = beat_train(120, Physiology(hr=80, af=af), rng)
        d = np.diff(beats)
        cv[af] = np.std(np.diff(d)) / np.mean(d)  # successive differences: AF's signature
    assert cv[1.0] > 4 * cv[0.0]


def test_records_read_back_with_wfdb(sim_data):
    rec = sorted((sim_data / "waveforms").glob("*/*/Pleth/*_1.hea"))[0]
    r = wfdb.rdrecord(str(rec)[:-4])
    assert r.fs == 125 and r.sig_name == ["Pleth"] and r.p_signal.shape[0] > 125 * 30
