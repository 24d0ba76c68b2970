"""``extract-pairs`` (``cohorts/corpus/``) on files written in each source's published layout with
real signals: the ECG and PLETH of PhysioNet 2015 records (ICU monitors, 250 Hz) and TROIKA's chest
ECG and wrist PPG, resampled to each source's documented rates, with its channel names, units and
distractor channels. The stored pairs keep the raw records' beat rate and R-peak-to-pulse delay;
blocks give what the whole file gives; damaged files are skipped and listed; shards merge to the
single run; and pretraining reads two pair stores beside a cohort, with a retrieval table per
source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from helpers import at_rate, run_cli, write_edf, write_pulsedb
from scipy import signal as sps
from scipy.io import loadmat

from cohorts.corpus import PairsConfig, extract_pairs, merge_pairs, open_pairs, subject_splits
from cohorts.profiles import anyppg
from phewas.base.errors import InputError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA / "physionet2015").is_dir(), reason="the shared real recordings are not here")


def physionet(name):
    import wfdb
    rec = wfdb.rdrecord(str(DATA / "physionet2015" / name))
    names = list(rec.sig_name)
    n = int(len(rec.p_signal) // rec.fs * rec.fs)  # whole seconds
    x = rec.p_signal[:n]
    for j in range(x.shape[1]):  # the monitor's few dropped samples, bridged: EDF has no NaN
        bad = np.isnan(x[:, j])
        x[bad, j] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), x[~bad, j])
    return x[:, names.index("II")], x[:, names.index("PLETH")], float(rec.fs)


def troika(k=1):
    path = sorted((DATA / "troika").glob("DATA_*_TYPE*.mat"))[k - 1]
    sig = loadmat(path)["sig"]
    n = sig.shape[1] // 125 * 125
    return sig[0, :n], sig[1, :n], 125.0


def rates(ecg, ecg_fs, ppg, ppg_fs, secs):
    """Each source's documented rates: the signals resampled to them, cut to ``secs`` seconds."""
    return at_rate(ecg, ecg_fs[0], ecg_fs[1])[:secs * ecg_fs[1]], at_rate(ppg, ppg_fs[0], ppg_fs[1])[:secs * ppg_fs[1]]


def noise(n, seed=0):
    return np.random.default_rng(seed).normal(size=n)


def mesa_night(path, ecg, ppg, fs, secs):
    secs = min(secs, int(len(ecg) // fs))
    e, p = rates(ecg, (fs, 256), ppg, (fs, 256), secs)
    write_edf(path, [("EKG", e, 256, "mV"), ("EOG-L", noise(secs * 256), 256, "uV"),
                     ("EEG1", noise(secs * 256, 1), 256, "uV"), ("Thor", noise(secs * 32, 2), 32, ""),
                     ("Pleth", p, 256, ""), ("SpO2", np.full(secs, 97.0), 1, "%"),
                     ("HR", np.full(secs, 80.0), 1, "bpm")])


def cfs_night(path, ecg, ppg, fs, secs, ecg_rate=512, pleth=True):
    secs = min(secs, int(len(ecg) // fs))
    e, p = rates(ecg, (fs, ecg_rate), ppg, (fs, 128), secs)
    signals = [("C3", noise(secs * 128), 128, "uV"), ("ECG1", -e, ecg_rate, "mV"), ("ECG2", e, ecg_rate, "mV"),
               ("THOR EFFORT", noise(secs * 32, 3), 32, ""), ("SpO2" if pleth else "SaO2", np.full(secs, 96.0), 1, "%")]
    if pleth:
        signals.append(("PlethWV", p, 128, ""))
    write_edf(path, signals)


def hsp_session(root, sub, ses, ecg, ppg, fs, secs, task="psg", ecg_label="ECG-LA", unit="V"):
    secs = min(secs, int(len(ecg) // fs))
    e, p = rates(ecg, (fs, 200), ppg, (fs, 256), secs)
    eeg = root / sub / f"ses-{ses}" / "eeg"
    scale = {"V": 1e-3, "uV": 1e3, "mV": 1.0}[unit]
    write_edf(eeg / f"{sub}_ses-{ses}_task-{task}_eeg.edf",
              [("F3-M2", noise(secs * 200), 200, "uV"), (ecg_label, e * scale, 200, unit),
               ("ECG-RA", noise(secs * 200, 4) * scale, 200, unit), ("Pleth", p, 256, ""),
               ("SpO2", np.full(secs, 98.0), 1, "%")])
    (eeg / f"{sub}_ses-{ses}_task-{task}_channels.tsv").write_text("name\ttype\tunits\nECG-LA\tECG\tV\n")


def pulsedb_subject(path, ecg, ppg, fs):
    """10-s segments at 125 Hz, each min-max scaled to [0, 1] as PulseDB's *_Raw fields are."""
    e, p = at_rate(ecg, fs, 125), at_rate(ppg, fs, 125)
    n = min(len(e), len(p)) // 1250
    scale = [(lambda w: (w - w.min()) / (w.max() - w.min()))(x[k * 1250:(k + 1) * 1250]) for x in (p, e)
             for k in range(n)]
    write_pulsedb(path, scale[:n], scale[n:])


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    a, v, t = physionet("a103l"), physionet("v102s"), troika(1)
    mesa = root / "mesa" / "polysomnography" / "edfs"
    mesa_night(mesa / "mesa-sleep-0001.edf", *a, secs=300)
    for k in range(1, 10):  # nine of TROIKA's runners as nights: ten subjects, 8:1:1
        mesa_night(mesa / f"mesa-sleep-{k + 1:04d}.edf", *troika(k), secs=270)
    cfs = root / "cfs" / "polysomnography" / "edfs"
    cfs_night(cfs / "cfs-visit5-800002.edf", *a, secs=300)
    cfs_night(cfs / "cfs-visit5-800010.edf", *v, secs=300, ecg_rate=256, pleth=False)  # no PlethWV: skipped
    hsp = root / "hsp" / "bids" / "S0001"
    hsp_session(hsp, "sub-S0001111189075", 1, *a, secs=300)
    hsp_session(hsp, "sub-S0001111189075", 2, *v, secs=300)
    hsp_session(hsp, "sub-I0002000000001", 1, *t, secs=280, task="PSG", ecg_label="EKG", unit="uV")
    pdb = root / "pulsedb"
    pulsedb_subject(pdb / "PulseDB_MIMIC" / "p000160.mat", *a)
    pulsedb_subject(pdb / "PulseDB_Vital" / "p000160.mat", *v)
    write_pulsedb(pdb / "PulseDB_MIMIC" / "p000161.mat", [np.zeros(1250)], [np.zeros(1250)])  # all flat: no pair
    import h5py
    (pdb / "Info_Files").mkdir()
    with h5py.File(pdb / "Info_Files" / "MIMIC_Info.mat", "w") as f:
        f.create_dataset("Subset", data=np.zeros(3))
    return root


@pytest.fixture(scope="module")
def stores(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores")
    return {fmt: (extract_pairs(fmt, sources / fmt, out / fmt, workers=1), out / fmt)
            for fmt in ("mesa", "cfs", "hsp", "pulsedb")}


# ---------------------------------------------------------------- beats and delays

def r_peaks(ecg, fs):
    """R peaks: the 5-20 Hz band's energy peaks, at least 0.3 s apart (sign-free: a stored ECG may
    be the inverted lead)."""
    b, a = sps.butter(3, [5, 20], btype="band", fs=fs)
    y = sps.filtfilt(b, a, ecg) ** 2
    peaks, _ = sps.find_peaks(y, distance=int(0.3 * fs), height=0.2 * np.percentile(y, 99))
    return peaks / fs


def pulse_peaks(ppg, fs):
    b, a = sps.butter(2, [0.5, 8], btype="band", fs=fs)
    y = sps.filtfilt(b, a, ppg)
    peaks, _ = sps.find_peaks(y, distance=int(0.3 * fs), prominence=0.3 * np.std(y))
    return peaks / fs


def beats(ecg, ecg_fs, ppg, ppg_fs):
    """``(median beat rate, median delay from an R peak to the next pulse peak)`` of a stretch."""
    r, q = r_peaks(ecg, ecg_fs), pulse_peaks(ppg, ppg_fs)
    delays = [q[q > t][0] - t for t in r if (q > t).any() and q[q > t][0] - t < 1.0]
    return (60 / np.median(np.diff(r)) if len(r) > 2 else np.nan), (np.median(delays) if delays else np.nan)


def raw_windows(ecg, ppg, fs, starts):
    """The raw record's 10-s stretches at ``starts`` (seconds)."""
    return [(ecg[int(s * fs):int((s + 10) * fs)], ppg[int(s * fs):int((s + 10) * fs)]) for s in starts]


@pytest.mark.parametrize("fmt, record", [("mesa", "mesa-sleep-0001.edf"), ("cfs", "cfs-visit5-800002.edf"),
                                         ("hsp", "189075/ses-1"), ("pulsedb", "PulseDB_MIMIC/p000160")])
def test_pairs_keep_the_records_beat_rate_and_pulse_delay(stores, fmt, record):
    """a103l through each layout: for 90% of the stored pairs and their raw stretches, the beat
    rate within 3 bpm and the R-peak-to-pulse delay within 24 ms (a sample at 125 Hz is 8 ms; the
    filters and resampling move peaks by a few; a simple detector misses a beat at a window's edge
    now and then); the median over pairs within 1 bpm and 8 ms."""
    _, path = stores[fmt]
    store = open_pairs(path)
    idx = store.pair_index.with_row_index("i").filter(pl.col("record").str.contains(record))
    assert idx.height >= 20, idx.height
    ecg, ppg, fs = physionet("a103l")
    ours, theirs = [], []
    for i, (e_raw, p_raw) in zip(idx["i"].to_list(), raw_windows(ecg, ppg, fs, idx["start"].to_list())):
        ours.append(beats(store.pairs_ecg_array[i].astype(np.float64), 500, store.pairs_ppg_array[i].astype(np.float64),
                          125))
        theirs.append(beats(e_raw, fs, p_raw, fs))
    ours, theirs = np.array(ours), np.array(theirs)
    ok = np.isfinite(ours).all(axis=1) & np.isfinite(theirs).all(axis=1)
    assert ok.sum() >= 0.8 * len(ok)
    assert np.mean(np.abs(ours[ok, 0] - theirs[ok, 0]) < 3.0) >= 0.9  # a beat missed at a window's edge: a few
    assert np.mean(np.abs(ours[ok, 1] - theirs[ok, 1]) < 0.024) >= 0.9
    assert abs(np.median(ours[ok, 0]) - np.median(theirs[ok, 0])) < 1.0
    assert abs(np.median(ours[ok, 1]) - np.median(theirs[ok, 1])) < 0.008
    assert 0.1 < np.median(ours[ok, 1]) < 0.6  # a pulse follows its beat by a transit time


def test_each_source_converts_its_layout_with_counts(stores):
    counts = {fmt: m["counts"] for fmt, (m, _) in stores.items()}
    assert counts["mesa"]["files"] == 10 and counts["mesa"]["files_skipped"] == 0
    assert counts["mesa"]["subjects_by_split"] == {"pretrain_train": 8, "pretrain_val": 1, "pretrain_test": 1}
    assert counts["cfs"]["files"] == 1 and counts["cfs"]["files_skipped"] == 1  # the night without PlethWV
    cfs_skip = stores["cfs"][0]["skipped"][0]
    assert cfs_skip["file"].endswith("cfs-visit5-800010.edf") and "no PPG channel (PlethWV or Pleth or PPG)" in \
        cfs_skip["reason"] and "SaO2" in cfs_skip["reason"]
    assert counts["hsp"]["files"] == 3  # upper-case task-PSG and the EKG label found by their variants
    assert counts["pulsedb"]["files"] == 3 and counts["pulsedb"]["files_skipped"] == 1  # an info file
    assert "no Subj_Wins" in stores["pulsedb"][0]["skipped"][0]["reason"]
    for fmt, (m, path) in stores.items():
        store = open_pairs(path)
        n = store.pair_index.height
        assert store.pairs_ppg_array.shape == (n, 1250) and store.pairs_ecg_array.shape == (n, 5000)
        assert store.pairs_ppg_array.dtype == np.float16 and m["counts"]["pairs"] == n > 0
        assert set(store.pair_index["source"]) == {fmt}
        by = store.pair_index.group_by("subject").agg(pl.col("split").n_unique())
        assert (by["split"] == 1).all()  # a subject's pairs on one side
    hsp = open_pairs(stores["hsp"][1]).pair_index
    assert hsp.filter(pl.col("subject") == "sub-S0001111189075")["record"].str.contains("ses-2").any()
    records = pl.read_parquet(stores["hsp"][1] / "records.parquet")
    assert set(records["ecg"]) == {"ECG-LA", "EKG"} and set(records["ecg_unit"]) == {"V", "uV"}
    pdb = open_pairs(stores["pulsedb"][1]).pair_index
    assert set(pdb["subject"]) == {"PulseDB_MIMIC:p000160", "PulseDB_Vital:p000160"}  # one name, two subjects


def test_units_are_millivolts_unless_the_source_units_are_asked_for(sources, tmp_path):
    """HSP's ECG in V is converted to mV: the release's flatness threshold (0.001 in the file's
    units) then keeps the windows it keeps at MC-MED's mV; read in V, every window is "flat"."""
    mv = extract_pairs("hsp", sources / "hsp", tmp_path / "mv", workers=1)
    source = extract_pairs("hsp", sources / "hsp", tmp_path / "v", PairsConfig(ecg_units="source"), workers=1)
    assert source["counts"]["windows_dropped"]["flat"] > mv["counts"]["windows_dropped"]["flat"]
    for folder, volts_kept in ((tmp_path / "mv", True), (tmp_path / "v", False)):
        records = pl.read_parquet(folder / "records.parquet")
        in_volts = records.filter(pl.col("ecg_unit") == "V")
        assert in_volts.height == 2 and ((in_volts["pairs"] > 20).all() if volts_kept else
                                         (in_volts["pairs"] == 0).all())
        assert (records.filter(pl.col("ecg_unit") == "uV")["pairs"] > 20).all()  # uV: large, never flat


def test_release_channel_names_only(sources, tmp_path):
    m = extract_pairs("hsp", sources / "hsp", tmp_path / "r", PairsConfig(channels="release"), workers=1)
    assert m["counts"]["files_skipped"] == 1 and "no ECG channel (ECG-LA)" in m["skipped"][0]["reason"]


def test_blocks_give_what_the_whole_night_gives(sources, tmp_path):
    """Read 7 windows at a time (the ECG's polarity voted over all blocks first), the pairs are
    those of the release's processor on the whole night at once."""
    m = extract_pairs("mesa", sources / "mesa", tmp_path / "b", PairsConfig(block_windows=7), workers=1)
    store = open_pairs(tmp_path / "b")
    import edfio
    night = edfio.read_edf(sources / "mesa" / "polysomnography" / "edfs" / "mesa-sleep-0001.edf")
    p, e = (np.asarray(night.get_signal(label).data, np.float64) for label in ("Pleth", "EKG"))  # as stored
    whole = anyppg.pair_windows(p, 256, e, 256)
    rows = store.pair_index.filter(pl.col("record").str.contains("0001"))
    np.testing.assert_array_equal(rows["start"].to_numpy(), whole.index * 10.0)
    np.testing.assert_array_equal(store.pairs_ppg_array[rows["row"].to_numpy()], whole.ppg.astype(np.float16))
    np.testing.assert_array_equal(store.pairs_ecg_array[rows["row"].to_numpy()], whole.ecg.astype(np.float16))
    assert m["counts"]["pairs"] == open_pairs(tmp_path.parent / tmp_path.name / "b").pair_index.height


def test_the_robust_profile_makes_pairs_too(sources, tmp_path):
    m = extract_pairs("pulsedb", sources / "pulsedb", tmp_path / "r", PairsConfig(preprocess="robust"), workers=1)
    store = open_pairs(tmp_path / "r")
    assert store.profile == "robust" and m["counts"]["pairs"] > 20
    assert np.isfinite(store.pairs_ecg_array[:].astype(np.float32)).all()


def test_subject_split_is_the_releases_rule_on_subjects():
    import pandas as pd
    subjects = [f"s{i:03d}" for i in range(50)]
    got = subject_splits(reversed(subjects))
    order = pd.DataFrame({"subject": subjects}).sample(frac=1, random_state=927)["subject"].tolist()
    assert [got[s] for s in order] == ["pretrain_train"] * 40 + ["pretrain_val"] * 5 + ["pretrain_test"] * 5


# ---------------------------------------------------------------- damaged files

def edf_plus_d(path, ecg, ppg):
    """An EDF+C with a time-keeping annotation per record, its header made EDF+D and one record's
    onset moved 100 s on: a discontinuous recording."""
    write_edf(path, [("EKG", ecg, 256, "mV"), ("Pleth", ppg, 256, "")], annotations=[(0.0, "start")])
    data = bytearray(path.read_bytes())
    data[192:197] = b"EDF+D"
    at = data.find(b"+5\x14\x14\x00")  # record 5's time-keeping TAL, padded with zeros after it
    assert at > 0
    data[at:at + 7] = b"+105\x14\x14\x00"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, needle", [
    ("truncated", "truncated"),
    ("edf_plus_d", "discontinuous EDF+D"),
    ("no_channel", "no PPG channel"),
    ("not_edf", "not a readable EDF file"),
])
def test_a_damaged_night_is_skipped_and_listed(tmp_path, capsys, damage, needle):
    ecg, ppg, fs = physionet("a103l")
    src = tmp_path / "mesa"
    mesa_night(src / "mesa-sleep-0001.edf", ecg, ppg, fs, secs=120)
    bad = src / "mesa-sleep-0002.edf"
    if damage == "truncated":
        mesa_night(bad, ecg, ppg, fs, secs=120)
        bad.write_bytes(bad.read_bytes()[:-3000])
    elif damage == "edf_plus_d":
        e, p = rates(ecg, (fs, 256), ppg, (fs, 256), 120)
        edf_plus_d(bad, e, p)
    elif damage == "no_channel":
        e, _ = rates(ecg, (fs, 256), ppg, (fs, 256), 120)
        write_edf(bad, [("EKG", e, 256, "mV"), ("SpO2", np.full(120, 97.0), 1, "%")])
    else:
        bad.write_text("not an EDF at all\n" * 20)
    rc, err = run_cli(["extract-pairs", "--format", "mesa", "--source", src, "--out", tmp_path / "out",
                       "--workers", "1"], capsys)
    assert rc == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["counts"]["files_skipped"] == 1 and m["skipped"][0]["file"] == "mesa-sleep-0002.edf"
    assert needle in m["skipped"][0]["reason"], m["skipped"]
    assert m["counts"]["files"] == 1 and m["counts"]["pairs"] > 0
    rc, err = run_cli(["extract-pairs", "--format", "mesa", "--source", src, "--out", tmp_path / "strict",
                       "--workers", "1", "--strict"], capsys)
    assert rc == 2 and len(err) == 1 and "mesa-sleep-0002.edf" in err[0] and needle in err[0], err
    assert not (tmp_path / "strict").exists()


def test_a_pulsedb_file_without_its_fields(tmp_path):
    import h5py
    src = tmp_path / "pulsedb" / "PulseDB_MIMIC"
    src.mkdir(parents=True)
    with h5py.File(src / "p000001.mat", "w") as f:
        f.create_group("Subj_Wins").create_dataset("ABP_Raw", data=np.zeros(3))
    with pytest.raises(InputError, match="p000001.mat.*no field 'PPG_Raw'"):
        extract_pairs("pulsedb", tmp_path / "pulsedb", tmp_path / "out", workers=1, strict=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no pulsedb files found"):
        extract_pairs("pulsedb", tmp_path / "empty", tmp_path / "out", workers=1)


# ---------------------------------------------------------------- shards, resume, pretraining

def test_shards_merge_to_the_single_run(sources, stores, tmp_path):
    for i in range(2):
        extract_pairs("hsp", sources / "hsp", tmp_path / "hsp", shard=(i, 2), workers=1)
    merged = merge_pairs(tmp_path / "hsp", 2)
    single = open_pairs(stores["hsp"][1])
    store = open_pairs(tmp_path / "hsp")
    key = ["record", "start"]
    a = single.pair_index.sort(key)
    b = store.pair_index.sort(key)
    assert a.drop("row").equals(b.drop("row")) and merged["counts"]["pairs"] == single.pair_index.height
    np.testing.assert_array_equal(single.pairs_ecg_array[a["row"].to_numpy()],
                                  store.pairs_ecg_array[b["row"].to_numpy()])


def test_a_killed_run_resumes_from_its_finished_files(sources, tmp_path, monkeypatch):
    import cohorts.corpus.extract as ex
    calls = []
    real = ex.process_file

    def dies_on_the_second(job):
        calls.append(job["record"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)
    monkeypatch.setattr(ex, "process_file", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        extract_pairs("hsp", sources / "hsp", tmp_path / "hsp", workers=1)
    assert not (tmp_path / "hsp").exists()
    calls.clear()
    monkeypatch.setattr(ex, "process_file", lambda job: calls.append(job["record"]) or real(job))
    m = extract_pairs("hsp", sources / "hsp", tmp_path / "hsp", workers=1)
    assert len(calls) == 2 and m["counts"]["files"] == 3  # the first file's part was kept


@pytest.mark.slow
def test_pretraining_on_a_cohort_and_two_pair_stores(sim_store, sim_cohort, stores, tmp_path):
    """The cohort's pairs with MESA's and PulseDB's: one run, batches drawn from all three, and a
    retrieval table with a row per source, the sample-weighted average and the macro average."""
    from encoder.config import pretrain_config
    from encoder.pretrain import pretrain
    cfg = pretrain_config("demo", steps=4, batch_size=16, eval_every=2, checkpoint_every=2, retrieval_batch=8,
                          warmup_steps=1, log_every=1)
    r = pretrain(sim_cohort, tmp_path / "run", cfg, pairs=[stores["mesa"][1], stores["pulsedb"][1]])
    assert r.finished
    table = pl.read_csv(tmp_path / "run" / "retrieval.csv")
    assert table["source"].to_list() == ["mcmed", "mesa", "pulsedb", "all", "macro"]
    per = table.filter(~pl.col("source").is_in(["all", "macro"]))
    n = per["n"].to_numpy()
    assert table.filter(pl.col("source") == "all")["recall@1"][0] == pytest.approx(
        float(np.dot(n / n.sum(), per["recall@1"].to_numpy())))
    assert table.filter(pl.col("source") == "macro")["mrr"][0] == pytest.approx(per["mrr"].mean())
    s = json.loads((tmp_path / "run" / "manifest.json").read_text())["summary"]
    assert set(s["pairs_by_source"]) == {"mcmed", "mesa", "pulsedb"}
    assert s["pairs_by_source"]["pulsedb"]["test"] == open_pairs(stores["pulsedb"][1]).pair_index.filter(
        pl.col("split") == "pretrain_test").height
    # the release's recipe: chunks of one source each, the loss per process
    chunked = pretrain_config("demo", steps=3, device_batch=16, chunk_size=4, loss_scope="device", eval_every=3,
                              checkpoint_every=3, retrieval_batch=8, warmup_steps=1, log_every=1)
    assert pretrain(sim_cohort, tmp_path / "chunked", chunked, pairs=[stores["mesa"][1]]).finished
    # pair stores alone, no cohort
    r = pretrain(None, tmp_path / "alone", cfg, pairs=[stores["mesa"][1], stores["hsp"][1]])
    assert r.finished and pl.read_csv(tmp_path / "alone" / "retrieval.csv")["source"].to_list() == \
        ["mesa", "hsp", "all", "macro"]


def test_release_chunks_are_cut_within_a_source(stores):
    """As the release's s4 writes them, each chunk of a batch comes from one source; a batch mixes
    at most ``per_batch`` chunks, so at most that many sources."""
    from encoder.data import PairUnion, PairWindows
    from encoder.sampler import ChunkBatches
    union = PairUnion([PairWindows(open_pairs(stores[f][1]), ["pretrain_train"]) for f in ("mesa", "hsp", "pulsedb")],
                      ["mesa", "hsp", "pulsedb"])
    source = np.concatenate([np.full(len(d), k) for k, d in enumerate(union.datasets)])
    sampler = ChunkBatches(union.source_indices(), chunk=8, per_batch=2, seed=0)
    assert all(len(set(source[c.numpy()])) == 1 for c in sampler.chunks)
    assert sorted(np.concatenate([c.numpy() for c in sampler.chunks])) == list(range(len(union)))
    mixes = [len(set(source[sampler.batch(step)])) for step in range(sampler.per_epoch)]
    assert max(mixes) <= 2 and max(mixes) == 2  # two chunks a batch: at most two sources, and some do mix
    ppg, ecg = union.__getitems__([0, len(union) - 1, 5])  # items read back from their own stores
    last = union.datasets[-1]
    np.testing.assert_array_equal(ecg[1].numpy(), last.__getitems__([len(last) - 1])[1][0].numpy())
