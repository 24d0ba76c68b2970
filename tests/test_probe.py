"""``phewas probe``: the dataset format and its errors, windows cut as ``extract-segments`` cuts
them, the converters on small files written in the public datasets' layouts, the probe's fits
against scikit-learn's own search, the splits, and every kind of encoder."""

import csv
import json
import pickle

import numpy as np
import polars as pl
import pytest
import torch

from cohorts.preprocess import PPG, cut_windows, preprocess_record
from cohorts.probe_convert import convert_dataset
from cohorts.probe_data import example_windows, load_probe_dataset
from cohorts.sim.probe import SimulateProbeConfig, simulate_probe_dataset
from encoder.config import demo_ppg
from encoder.embed import embed, load_encoder
from encoder.net1d import Net1D
from phewas.base.errors import InputError
from phewas.cli import main
from reports.probe import ProbeConfig, fit_probe, probe, split_examples


@pytest.fixture(scope="module")
def sim_probe(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "ds"
    simulate_probe_dataset(out, SimulateProbeConfig(subjects=16, records_per_subject=3, seed=1))
    return out


def test_windows_are_cut_as_extract_segments_cuts_them():
    rng = np.random.default_rng(0)
    fs = 100.0
    t = np.arange(int(35 * fs)) / fs
    x = np.sin(2 * np.pi * 1.2 * t) + 0.1 * rng.normal(size=len(t))
    w, why = example_windows(x, fs, None, None, 0.25, 5.0)
    y, bad, _ = preprocess_record(x, fs, PPG, "ppg")
    ref, _, _ = cut_windows(y, bad, PPG, np.arange(0, len(y) - PPG.window + 1, PPG.window))
    assert why is None and w.shape == (3, PPG.window)  # 35 s: three non-overlapping 10-s windows
    np.testing.assert_allclose(w, ref.astype(np.float32))
    w8, _ = example_windows(x, fs, 2.0, 8.0, 0.25, 5.0)  # 8 s: z-scored, zero-padded to 10 s
    assert w8.shape == (1, PPG.window) and np.all(w8[0, 1000:] == 0) and abs(w8[0, :1000].std() - 1) < 1e-3
    w4, why4 = example_windows(x, fs, 0.0, 4.0, 0.25, 5.0)
    assert len(w4) == 0 and why4 == "shorter than min_seconds"


def test_simulated_dataset_reads_with_subjects_and_all_tasks(sim_probe):
    d = load_probe_dataset(sim_probe)
    assert d.tasks == {"heart_rate": "regression", "af": "binary", "heart_failure": "binary",
                       "stiffness": "regression"}
    assert d.labels.height >= 45 and d.labels["subject"].n_unique() == 16
    assert np.bincount(d.example_of).min() >= 1 and d.windows.shape[1] == 1250


def write_dataset(folder, rows, toml, windows=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.toml").write_text(toml)
    with open(folder / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    if windows is not None:
        np.save(folder / "windows.npy", windows)


@pytest.mark.parametrize("rows,toml,needle", [
    ([["window", "hr"], ["0", "70"]], 'fs = 100\n[tasks.hr]\nkind = "ordinal"\n', "[tasks.hr] kind 'ordinal'"),
    ([["window", "y"], ["0", "70"]], 'fs = 100\n[tasks.hr]\nkind = "regression"\n', "no column for task 'hr'"),
    ([["window", "hr"], ["0", "fast"]], 'fs = 100\n[tasks.hr]\nkind = "regression"\n', "row 2, column 'hr'"),
    ([["window", "hr", "split"], ["0", "70", "val"]], 'fs = 100\n[tasks.hr]\nkind = "regression"\n',
     "row 2, column 'split'"),
    ([["window", "hr"], ["7", "70"]], 'fs = 100\n[tasks.hr]\nkind = "regression"\n', "not a row of windows.npy"),
    ([["hr"], ["70"]], 'fs = 100\n[tasks.hr]\nkind = "regression"\n', "exactly one of the columns"),
    ([["window", "hr"], ["0", "70", "x"]], 'fs = 100\n[tasks.hr]\nkind = "regression"\n', "row 2"),
    ([["window", "hr"], ["0", "70"]], '[tasks.hr]\nkind = "regression"\n', "fs is needed"),
])
def test_bad_datasets_name_the_file_row_and_column(tmp_path, rows, toml, needle):
    write_dataset(tmp_path / "d", rows, toml, np.zeros((2, 1000), np.float32))
    with pytest.raises(InputError, match=None) as err:
        load_probe_dataset(tmp_path / "d")
    assert needle in str(err.value)


def test_numpy_windows_and_official_split(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(1000) / 100
    w = np.stack([np.sin(2 * np.pi * (1 + k / 20) * t) + 0.05 * rng.normal(size=1000) for k in range(12)])
    rows = [["window", "split", "hr"]] + [[str(k), "test" if k % 4 == 0 else "train", str(60 + 3 * k)]
                                          for k in range(12)]
    write_dataset(tmp_path / "d", rows, 'fs = 100\n[tasks.hr]\nkind = "regression"\n', w.astype(np.float32))
    d = load_probe_dataset(tmp_path / "d")
    assert d.windows.shape == (12, 1250)  # 10 s at 100 Hz: one window each
    test, how = split_examples(d.labels, 0.2, 0)
    assert how == "official" and test.sum() == 3


def test_split_by_subject_is_disjoint_and_seeded(sim_probe):
    d = load_probe_dataset(sim_probe)
    a, how = split_examples(d.labels, 0.25, seed=3)
    b, _ = split_examples(d.labels, 0.25, seed=3)
    subj = d.labels["subject"].to_numpy()
    assert how.startswith("by subject") and (a == b).all()
    assert not set(subj[a]) & set(subj[~a]) and len(set(subj[a])) == 4
    # with a class task: a draw where it has two classes on both sides (5 of 16 subjects have AF)
    c, how = split_examples(d.labels, 0.25, seed=3, class_tasks=["af"])
    af = d.labels["af"]
    assert af.filter(pl.Series(c)).n_unique() == 2 and af.filter(pl.Series(~c)).n_unique() == 2
    assert "two classes on each side" in how and not set(subj[c]) & set(subj[~c])
    # one subject with heart failure: no draw can put it on both sides; the first draw stands
    e, how = split_examples(d.labels, 0.25, seed=3, class_tasks=["af", "heart_failure"])
    assert (e == a).all() and how == "by subject (8:2, seeded)"


def test_ridge_probe_equals_scikit_learn_grid_search():
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from reports.probe import ALPHAS
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 15)) * rng.uniform(0.1, 10, 15)
    y = X @ rng.normal(size=15) + rng.normal(scale=3, size=120)
    (pred, _), alpha = fit_probe(X[:90], y[:90], X[90:], "regression", folds=5, seed=4)
    search = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": ALPHAS},
                          cv=KFold(5, shuffle=True, random_state=4), scoring="neg_mean_squared_error")
    search.fit(X[:90], y[:90])
    assert alpha == search.best_params_["ridge__alpha"]
    np.testing.assert_allclose(pred, search.predict(X[90:]), rtol=1e-8)


def test_logistic_probe_recovers_a_linear_class_boundary():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 8))
    y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "no")
    (proba, classes), c = fit_probe(X[:200], y[:200], X[200:], "binary", groups=np.arange(200) % 40, seed=0)
    assert list(classes) == ["no", "yes"] and proba.shape == (100, 2)
    assert np.mean(classes[proba.argmax(1)] == y[200:]) > 0.9


def test_encoders_of_every_kind(tmp_path, sim_probe):
    from encoder.checkpoints import save_anyppg
    torch.manual_seed(0)
    net = Net1D(demo_ppg())
    save_anyppg(net, tmp_path / "w.safetensors")
    loaded, desc = load_encoder(str(tmp_path / "w.safetensors"), architecture=demo_ppg())
    x = np.random.default_rng(0).normal(size=(3, 1250)).astype(np.float32)
    np.testing.assert_allclose(embed(loaded, x), embed(net, x), rtol=1e-5, atol=1e-6)
    assert desc["kind"] == "weights" and len(desc["sha256"]) == 64
    r1, _ = load_encoder("random", architecture=demo_ppg(), seed=5)
    r2, _ = load_encoder("random", architecture=demo_ppg(), seed=5)
    np.testing.assert_array_equal(embed(r1, x), embed(r2, x))  # the floor is seeded
    with pytest.raises(Exception, match="encoder not found"):
        load_encoder(str(tmp_path / "nope.pth"))
    (tmp_path / "emptyrun").mkdir()
    (tmp_path / "emptyrun" / "config.json").write_text(json.dumps({"ppg": {}}))
    with pytest.raises(Exception, match="neither a pretraining run"):
        load_encoder(str(tmp_path / "emptyrun"))


def test_probe_command_writes_table_figures_and_reuses_embeddings(tmp_path, sim_probe):
    from encoder.checkpoints import save_anyppg
    torch.manual_seed(1)
    save_anyppg(Net1D(demo_ppg()), tmp_path / "enc.pth")
    out = tmp_path / "out"
    cfg = ProbeConfig(bootstrap=50, folds=3)
    # a weights file of the demo architecture cannot be read as AnyPPG's: an error naming it
    with pytest.raises(InputError, match="does not match the encoder"):
        probe(sim_probe, [str(tmp_path / "enc.pth")], out, config=cfg)
    pretrain = tmp_path / "pre"
    pretrain.mkdir()
    save_anyppg(Net1D(demo_ppg()), pretrain / "ppg_encoder.pth")
    from dataclasses import asdict
    (pretrain / "config.json").write_text(json.dumps({"ppg": asdict(demo_ppg())}))
    s = probe(sim_probe, [str(pretrain), "random"], out, config=cfg)
    t = pl.read_csv(out / "probe.csv")
    assert set(t["encoder"]) == {"pre", "random"} and set(t["task"]) == set(s["tasks"])
    hr = t.filter((pl.col("task") == "heart_rate") & (pl.col("metric") == "mae"))
    assert hr.height == 2 and (hr["ci_low"] <= hr["value"]).all() and (hr["value"] <= hr["ci_high"]).all()
    assert (out / "probe_heart_rate.png").exists() and "data:image/png" in (out / "index.html").read_text()
    assert s["encoders"]["random"]["dim"] == s["encoders"]["pre"]["dim"]  # random takes the run's architecture
    before = np.load(out / "embeddings" / "pre.npz")["embeddings"]
    assert main(["probe", "--dataset", str(sim_probe), "--encoder", str(pretrain), "random", "--out", str(out),
                 "--bootstrap", "50", "--folds", "3", "--task", "af", "--force", "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(out / "embeddings" / "pre.npz")["embeddings"], before)
    assert set(pl.read_csv(out / "probe.csv")["task"]) == {"af"}


def dalia_pickle(path, seconds=40, hr=75.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 64)) / 64
    bvp = (np.sin(2 * np.pi * hr / 60 * t) * 50 + rng.normal(size=len(t)))[:, None]
    n_labels = int((seconds - 8) / 2) + 1
    d = {"signal": {"wrist": {"BVP": bvp, "ACC": np.zeros((len(t) // 2, 3))}},
         "label": np.full(n_labels, hr), "activity": np.r_[np.zeros(20), np.full(seconds * 4 - 20, 3)][:, None],
         "subject": path.stem}
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(d, protocol=2))


def test_ppg_dalia_converter(tmp_path):
    src = tmp_path / "PPG_FieldStudy"
    dalia_pickle(src / "S1" / "S1.pkl", hr=70)
    dalia_pickle(src / "S2" / "S2.pkl", hr=95, seed=1)
    assert main(["convert-dataset", "--format", "ppg-dalia", "--source", str(src), "--out", str(tmp_path / "ds"),
                 "--quiet"]) == 0
    d = load_probe_dataset(tmp_path / "ds")
    assert d.tasks == {"heart_rate": "regression", "activity": "multiclass"}
    assert d.labels.height == 2 * 17 and set(d.labels["subject"]) == {"S1", "S2"}
    assert d.labels.filter(pl.col("subject") == "S2")["heart_rate"].unique().to_list() == [95.0]
    first = d.labels.row(0, named=True)
    assert first["activity"] is None  # 5 s of the transient id 0 in its 8 s: unlabelled
    assert d.labels["activity"].drop_nulls().unique().to_list() == ["3"]
    assert d.windows.shape[0] == d.labels.height  # 8-s windows: one padded window each
    # a pickle that would run code is refused
    bad = tmp_path / "evil" / "S1"
    bad.mkdir(parents=True)

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))
    (bad / "S1.pkl").write_bytes(pickle.dumps({"signal": Boom()}, protocol=2))
    with pytest.raises(InputError, match=r"refused to load (__builtin__|builtins)\.print"):
        convert_dataset("ppg-dalia", tmp_path / "evil", tmp_path / "ds2")
    assert not (tmp_path / "ds2").exists()


def test_but_ppg_converter(tmp_path):
    import wfdb
    src = tmp_path / "butppg"
    src.mkdir()
    rng = np.random.default_rng(0)
    ids = ["100001", "100002", "101001"]
    for k, rid in enumerate(ids):
        (src / rid).mkdir()
        t = np.arange(300) / 30
        sig = np.stack([np.sin(2 * np.pi * (1 + k / 5) * t) * c + rng.normal(size=300) * 0.05 for c in (1, 2, 3)], 1)
        wfdb.wrsamp(f"{rid}_PPG", fs=30, units=["NU"] * 3, sig_name=["PPG_R", "PPG_G", "PPG_B"], p_signal=sig,
                    fmt=["16"] * 3, adc_gain=[1000.0] * 3, baseline=[0] * 3, write_dir=str(src / rid))
    (src / "quality-hr-ann.csv").write_text("\ufeffID,Quality,HR\n" + "".join(
        f"{rid},{q},{hr}\n" for rid, q, hr in zip(ids, (1, 0, 1), (60, 72, 84))), encoding="utf-8")
    (src / "subject-info.csv").write_text("\ufeffID,Gender,Age [years]\n" + "".join(
        f"{rid},F,{a}\n" for rid, a in zip(ids, (30, 30, 55))), encoding="utf-8")
    convert_dataset("but-ppg", src, tmp_path / "ds")
    d = load_probe_dataset(tmp_path / "ds")
    assert d.tasks == {"quality": "binary", "heart_rate": "regression", "age": "regression"}
    assert d.labels["subject"].to_list() == ["100", "100", "101"]
    assert d.labels["quality"].to_list() == ["1", "0", "1"] and d.labels["age"].to_list() == [30.0, 30.0, 55.0]
    assert 'channel = "PPG_R"' in (tmp_path / "ds" / "dataset.toml").read_text()
    with pytest.raises(InputError, match="quality-hr-ann.csv"):
        convert_dataset("but-ppg", tmp_path, tmp_path / "ds3")


def test_bootstrap_over_subjects_is_calibrated_where_examples_cluster():
    """A probe's errors shared within subjects (subject effect SD 1, example noise SD 0.5; true
    MAE known): 200 test parts of 30 subjects x 5 examples. The interval from resampling
    subjects covers the true MAE in >= 90% (measured 93.5%; 86.5% with 12 subjects, README);
    resampling examples, blind to subjects, covers far less (measured 66%)."""
    from reports.probe import bootstrap_intervals
    rng = np.random.default_rng(0)
    true = np.sqrt(2 / np.pi) * np.sqrt(1.0 + 0.25)
    hit_subjects = hit_examples = 0
    n = 200
    for _ in range(n):
        g = np.repeat(np.arange(30), 5)
        err = rng.normal(size=30)[g] + 0.5 * rng.normal(size=len(g))
        y = np.zeros(len(g))
        lo, hi = bootstrap_intervals("regression", y, err, g, 300, int(rng.integers(1 << 30)))["mae"]
        hit_subjects += lo <= true <= hi
        lo, hi = bootstrap_intervals("regression", y, err, np.arange(len(g)), 300, int(rng.integers(1 << 30)))["mae"]
        hit_examples += lo <= true <= hi
    assert hit_subjects / n >= 0.90
    assert hit_examples / n < 0.80
