"""The ``anyppg`` preprocessing profile against the AnyPPG release's own processor, run on real
recordings (PhysioNet 2015 a103l and v102s, TROIKA, BUT PPG 1.0.0) in a throwaway environment by
``tests/fixtures/anyppg_release/make_fixtures.py``: the same windows kept, and each window as the
segment store holds it (float16) within its rounding of the release's."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

from cohorts.profiles import anyppg, ecg_quality, mne_iir

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "anyppg_release"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
INFO = json.loads((FIXTURES / "fixtures.json").read_text())
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="the shared real recordings are not here")


@pytest.fixture(scope="module")
def release():
    return np.load(FIXTURES / "processor.npz")


def physionet(record):
    import wfdb
    rec = wfdb.rdrecord(str(DATA / "physionet2015" / record))
    names = list(rec.sig_name)
    return rec.p_signal[:, names.index("PLETH")], rec.p_signal[:, names.index("II")], float(rec.fs)


def troika():
    for path in sorted((DATA / "troika").glob("DATA_*_TYPE*.mat")):
        yield path.stem.lower(), np.asarray(loadmat(path)["sig"][1], np.float64), 125.0


def but_ppg():
    from cohorts.converters.but_ppg import read_ppg
    for hea in sorted((DATA / "but_ppg_1.0.0").glob("*/*_PPG.hea")):
        yield hea.parent.name, read_ppg(hea), 30.0


def as_stored(windows):
    """What the segment store keeps: float16."""
    return np.asarray(windows, np.float16).astype(np.float64)


def assert_within_float16(ours, theirs):
    d = as_stored(ours) - np.asarray(theirs, np.float64)
    assert d.size == 0 or (np.sqrt(np.mean(d ** 2)) <= 1e-3 and np.abs(d).max() <= 1e-2)


@needs_data
@pytest.mark.parametrize("record", ["a103l", "v102s"])
def test_pairs_are_the_release_processors(release, record):
    ppg, ecg, fs = physionet(record)
    kept = anyppg.pair_windows(ppg, fs, ecg, fs)
    key = f"pairs__{record}__"
    np.testing.assert_array_equal(kept.index, release[key + "index"])
    assert kept.windows == INFO["pairs"][record]["windows"]
    assert kept.inverted == (release[key + "invert_ratio"] > 0.5)
    assert_within_float16(kept.ppg, release[key + "ppg"])
    assert_within_float16(kept.ecg, release[key + "ecg"])
    # each step on its own: the ECG polarity votes and NeuroKit2's Zhao verdicts
    votes = anyppg.ecg_inverted_votes(anyppg.cut(ecg, fs), fs)
    np.testing.assert_array_equal(votes, release[key + "invert_votes"])
    raw = anyppg.cut(ecg, fs)[release[key + "quality_index"]]
    raw = -raw if kept.inverted else raw
    np.testing.assert_array_equal(ecg_quality.zhao2018(anyppg.clean_ecg(raw, fs), fs), release[key + "verdicts"])


def test_v102s_is_inverted_and_loses_windows_to_the_ecg_check():
    # the published behaviour the profile reproduces: 16 of 30 PPG windows kept, the lead inverted,
    # 12 pairs left after the ECG quality check
    assert INFO["ppg"]["v102s"] == {"windows": 30, "kept": 16}
    assert INFO["pairs"]["v102s"]["kept"] == 12 and INFO["pairs"]["v102s"]["invert_ratio"] > 0.5


@needs_data
def test_ppg_windows_are_the_release_processors_on_every_real_recording(release):
    records = [(r, physionet(r)[0], 250.0) for r in ("a103l", "v102s")] + list(troika()) + list(but_ppg())
    assert len(records) == 2 + 12 + 48
    for name, x, fs in records:
        kept = anyppg.ppg_windows(x, fs)
        np.testing.assert_array_equal(kept.index, release[f"ppg__{name}__index"], err_msg=name)
        assert_within_float16(kept.ppg, release[f"ppg__{name}__ppg"])


def test_mne_filters_are_designed_as_mne_designs_them():
    # MNE's ringing estimate sets the padding: Butterworth 0.5-8 Hz order 3 at 250 Hz rings for 853
    # samples, the ECG high-pass (0.5 Hz, order 5) at 500 Hz for 792 (read off MNE 1.13 itself)
    assert mne_iir.design(250.0, 0.5, 8.0, 3, "ba")[1] == 853
    assert mne_iir.design(500.0, 0.5, None, 5, "ba")[1] == 792
    x = np.random.default_rng(0).normal(size=(2, 40))
    # a row shorter than the ringing is padded by its length less one, as MNE does
    y = mne_iir.filtfilt(x, 125.0, 0.5, 8.0, 3)
    assert y.shape == x.shape and np.isfinite(y).all()


def test_flat_windows_and_nonfinite_samples_are_dropped_by_the_releases_rules():
    fs = 125.0
    t = np.arange(int(40 * fs)) / fs
    x = 1000 + 50 * np.sin(2 * np.pi * 1.3 * t)
    x[int(12 * fs):int(16 * fs)] = 1000.0  # 4 s of a flat line: 40% of window 1
    x[int(25 * fs)] = np.nan  # one sample of window 2
    kept = anyppg.ppg_windows(x, fs)
    assert list(kept.index) == [0, 3] and kept.dropped == {"non_finite": 1, "flat": 1}
    # the threshold is absolute, in the record's units: the same record in volts is all "flat"
    assert len(anyppg.ppg_windows(x / 1e4, fs).index) == 0


def test_a_polarity_flip_is_never_applied_to_ppg():
    fs = 125.0
    t = np.arange(int(20 * fs)) / fs
    x = np.sin(2 * np.pi * 1.1 * t) + 0.3 * np.sin(2 * np.pi * 2.2 * t)
    up, down = anyppg.ppg_windows(x, fs), anyppg.ppg_windows(-x, fs)
    np.testing.assert_allclose(up.ppg, -down.ppg, atol=1e-5)


def write_record(folder: Path, name: str, record, channel: str, start: str, first: int = 0) -> dict:
    """One signal of a PhysioNet record written as MC-MED writes a channel (one WFDB record, the
    start time in its header), with the source's own gain and baseline so that the samples
    round-trip exactly; from sample ``first``."""
    import wfdb
    j = list(record.sig_name).index(channel)
    wfdb.wrsamp(name, fs=record.fs, units=[record.units[j]], sig_name=[channel],
                d_signal=record.d_signal[first:, j:j + 1], fmt=["16"], adc_gain=[record.adc_gain[j]],
                baseline=[record.baseline[j]], write_dir=str(folder), base_time=None)
    hea = folder / f"{name}.hea"
    first_line, *rest = hea.read_text().splitlines()
    hea.write_text("\n".join([f"{first_line} {start}", *rest]) + "\n")
    return {"channel": "ppg" if channel == "PLETH" else "ecg", "record": name,
            "n_samples": record.d_signal.shape[0] - first, "start_us": None}


@needs_data
def test_extract_segments_stores_the_releases_pairs_of_an_icu_record(release, tmp_path):
    """A real ICU record in MC-MED's layout (Pleth and II records of one stay on a common clock)
    through the segment store's own path gives the release's pairs, in time order."""
    import wfdb

    from cohorts.segments import SegmentConfig, process_stay
    rec = wfdb.rdrecord(str(DATA / "physionet2015" / "a103l"), physical=False)
    start_us = 1_700_000_000_000_000
    records = [write_record(tmp_path, "ppg_1", rec, "PLETH", "10:00:00.000 01/01/2020"),
               write_record(tmp_path, "ecg_1", rec, "II", "10:00:00.000 01/01/2020")]
    for r in records:
        r["start_us"] = start_us
    job = {"stay_id": "s1", "split": "pretrain_train", "pairs": True, "records": records}
    cfg = SegmentConfig(preprocess="anyppg", per_stay=100, max_pairs_per_stay=1000)
    out = process_stay(job, str(tmp_path), cfg)
    np.testing.assert_array_equal([p.start_us for p in out.pairs],
                                  start_us + 10_000_000 * release["pairs__a103l__index"])
    np.testing.assert_allclose(out.pair_ppg.astype(np.float64), as_stored(release["pairs__a103l__ppg"]), atol=0)
    np.testing.assert_allclose(out.pair_ecg.astype(np.float64), as_stored(release["pairs__a103l__ecg"]), atol=0)
    # the PPG record alone: its windows are the release's PPG-only ones (all kept: per_stay 100)
    assert out.n_candidates == len(release["ppg__a103l__index"])
    # a PPG record starting 3.2 s after the ECG: the pairs are the overlap's, cut from its start
    late = write_record(tmp_path, "ppg_2", rec, "PLETH", "10:00:03.200 01/01/2020", first=800)
    late["start_us"] = start_us + 3_200_000
    out = process_stay({**job, "records": [late, records[1]]}, str(tmp_path), cfg)
    ppg, ecg, fs = physionet("a103l")
    direct = anyppg.pair_windows(ppg[800:], fs, ecg[800:], fs)
    np.testing.assert_array_equal([p.start_us for p in out.pairs], late["start_us"] + 10_000_000 * direct.index)
    np.testing.assert_array_equal(out.pair_ppg, direct.ppg.astype(np.float16))


@pytest.mark.parametrize("fs", [67.43, 33.3, 99.9])
def test_a_rate_with_a_fraction_gives_ten_second_windows_of_the_same_rhythm(fs):
    """The release's resampling needs whole rates (its sources have them; scipy's resample_poly
    takes integers): a device's 67.43 Hz is resampled by the nearest small ratio and each 10-s
    window is 1,250 samples, a 1.2-Hz pulse still 1.2 Hz."""
    t = np.arange(int(60 * fs)) / fs
    kept = anyppg.ppg_windows(np.sin(2 * np.pi * 1.2 * t) + 0.3 * np.sin(2 * np.pi * 2.4 * t + 1), fs)
    assert kept.ppg.shape == (len(t) // int(10 * fs), 1250)
    spectrum = np.abs(np.fft.rfft(kept.ppg, axis=1)).mean(axis=0)
    assert np.fft.rfftfreq(1250, 1 / 125)[np.argmax(spectrum)] == pytest.approx(1.2, abs=0.1)
