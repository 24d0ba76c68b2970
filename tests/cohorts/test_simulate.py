import json

import numpy as np
import polars as pl
import wfdb
from scipy import signal as sps

from cohorts.sim.signals import Physiology, beat_train, ecg_signal, ppg_signal


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
    from cohorts.sim import PopulationConfig, simulate_population
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


def test_hard_population_breaks_the_easy_assumptions():
    """The harder population: each knob does what it says, and one world seed gives
    replicate studies the same phecode parameters."""
    from cohorts.sim import PopulationConfig, simulate_population
    from cohorts.sim.population import HARD
    std = PopulationConfig(patients=600, seed=5)
    assert all(getattr(std, k) != v for k, v in HARD.items())
    hard = PopulationConfig(patients=600, seed=5, hard=True, world_seed=3, frequent_visitors=0.3)
    assert hard.frequent_visitors == 0.3 and hard.age_shapes == HARD["age_shapes"]  # given wins
    v_std, _, plans_std, truth_std = simulate_population(std)
    v, _, plans, truth = simulate_population(hard)
    per_patient = lambda visits: visits.height / visits["MRN"].n_unique()  # noqa: E731
    assert per_patient(v) > per_patient(v_std) + 0.5
    assert v.group_by("MRN").len()["len"].max() > 8  # frequent visitors beyond the standard cap
    shapes = truth["age_shapes"]
    assert 0.3 < len(shapes) / len(truth["background"]) < 0.7
    assert {s["shape"] for s in shapes.values()} == {"sigmoid", "hump"} and not truth_std["age_shapes"]
    unusable = np.mean([p["unusable"] is not None for p in plans])
    assert 0.05 < unusable < 0.15 and all(p["unusable"] is None for p in plans_std)
    # saturating vascular age: stiffness flattens past 70 (linear gains 0.8 from 70 to 90)
    stiff = {}
    for p, age in zip(plans, v.filter(pl.col("CSN").is_in([p["csn"] for p in plans]))["Age"]):
        stiff.setdefault(int(age) // 10, []).append(p["phys"]["stiffness"])
    assert np.median(stiff[8]) - np.median(stiff[7]) < 0.25
    # one world, other patients: same phecodes and shapes, other visits
    other = simulate_population(PopulationConfig(patients=600, seed=6, hard=True, world_seed=3))
    assert other[3]["background"] == truth["background"] and other[3]["age_shapes"] == shapes
    assert not other[0]["MRN"].equals(v["MRN"])


def test_risk_follows_the_simulated_age_shape():
    """Hump phecodes are commoner at their mid-life peak than 25 years on either side, in the
    rows written (history and visit diagnoses name the phecode's description)."""
    from cohorts.phecodes import load_phecode_map
    from cohorts.sim import PopulationConfig, simulate_population
    v, pmh, _, truth = simulate_population(PopulationConfig(patients=6000, seed=1, hard=True, world_seed=2,
                                                            noise_codes_per_patient=0))
    desc = dict(load_phecode_map().phecodes.select("phecode", "description").iter_rows())
    age = dict(v.group_by("MRN").agg(pl.col("Age").min()).iter_rows())
    named = pl.concat([pmh.select("MRN", pl.col("Desc10").alias("d")), v.select("MRN", pl.col("Dx_name").alias("d"))])
    ratios = []
    for p, s in truth["age_shapes"].items():
        if s["shape"] != "hump" or not 40 <= s["centre"] <= 52:
            continue
        cases = set(named.filter(pl.col("d") == desc[p])["MRN"])

        def band(lo, hi, cases=cases):
            return np.mean([m in cases for m, a in age.items() if lo <= a < hi])
        c = s["centre"]
        ratios.append(band(c - 5, c + 5) / max(band(c - 35, c - 20) + band(c + 20, c + 35), 1e-3) * 2)
    assert len(ratios) >= 3 and np.median(ratios) > 2, ratios


def test_unusable_ppg_gives_no_window(tmp_path):
    """A dropping-out sensor keeps its record but no 10-s window passes the validity rule; the
    same visit without dropout gives windows."""
    from cohorts.preprocess import PPG, cut_windows, preprocess_record
    from cohorts.sim.writer import write_visit
    plan = {"csn": "12345678", "modality": "ppg_only", "origin": 7.0e9, "ms_headers": False, "seconds": 180.0,
            "phys": {"hr": 75.0, "resp_hz": 0.25, "af": 0.0, "hf": 0.0, "anemia": 0.0, "stiffness": 0.0,
                     "ptt": 0.24},
            "seed": 11, "unusable": None}
    kept = {}
    for unusable in (None, "dropout"):
        root = tmp_path / str(unusable)
        write_visit(plan | {"unusable": unusable}, root)
        n = 0
        for hea in (root / "waveforms").glob("*/*/Pleth/*.hea"):
            rec = wfdb.rdrecord(str(hea)[:-4])
            y, bad, _ = preprocess_record(rec.p_signal[:, 0], rec.fs, PPG, "ppg")
            n += len(cut_windows(y, bad, PPG, np.arange(0, len(y) - PPG.window + 1, PPG.window))[2])
        kept[unusable] = n
    assert kept["dropout"] == 0 and kept[None] >= 10, kept
