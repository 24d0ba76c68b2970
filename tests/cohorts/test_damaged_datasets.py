"""Damaged public datasets (``cohorts/converters/validate.py`` and the writer): each case starts
from files in the dataset's published layout that convert, damages them as a download, a disk or
an editor does, and checks the outcome through the command line: one line naming the file and
what was expected, exit status 2, no output folder; or a correct conversion whose manifest counts
what was left out. A damaged file among several is skipped and listed (``--strict``: an error).
Property tests feed the readers random shapes, dtypes and NaN placements."""

from __future__ import annotations

import json
import pickle

import numpy as np
import polars as pl
import pytest
import scipy.io
from helpers import (
    but_csvs,
    but_v2_record,
    dalia_pickle,
    deepbeat_part,
    gyro_subject,
    pulse,
    real_world_workbook,
    run_cli,
    troika_recording,
    uci_record,
    wesad_pickle,
    write_mat73,
)

from cohorts.converters import validate
from phewas.base.errors import InputError

# ---------------------------------------------------------------- good sources, one per format


def troika(src):
    troika_recording(src, "01", "01", reference="REF")
    troika_recording(src, "02", "02")


def gyro(src):
    gyro_subject(src / "Subject_1.mat", 90)
    gyro_subject(src / "Subject_2.mat", 140)


def uci(src):
    write_mat73(src / "Part_1.mat", "Part_1", [uci_record(35, 130, 70, 0), uci_record(12, 150, 90, 1)])
    cells = np.empty((2, 1), dtype=object)
    cells[0, 0], cells[1, 0] = uci_record(20, 110, 60, 2), uci_record(20, 120, 70, 3)
    scipy.io.savemat(src / "Part_2.mat", {"Part_2": cells})


def dalia(src):
    dalia_pickle(src / "S1" / "S1.pkl", hr=70)
    dalia_pickle(src / "S2" / "S2.pkl", hr=95, seed=1)


def wesad(src):
    wesad_pickle(src / "S2" / "S2.pkl", bpm=70)
    wesad_pickle(src / "S3" / "S3.pkl", bpm=80)


def deepbeat(src):
    deepbeat_part(src / "validate.npz", 12, 3, ["149", "150"], compressed=False)
    deepbeat_part(src / "test.npz", 6, 2, ["149"], compressed=True)


def real_world(src):
    real_world_workbook(src / "train8.xlsx", 6)
    real_world_workbook(src / "test8.xlsx", 4)


def but(src):
    ids = ["112001", "112002", "113001"]
    for k, rid in enumerate(ids):
        but_v2_record(src, rid, 60 + 12 * k, k)
    but_csvs(src, ids, (60, 72, 84))


GOOD = {"troika": troika, "gyro-acc-ppg": gyro, "uci-bp": uci, "ppg-dalia": dalia, "wesad": wesad,
        "deepbeat": deepbeat, "real-world-ppg": real_world, "but-ppg": but}


def convert(tmp_path, fmt, capsys, *extra):
    return run_cli(["convert-dataset", "--format", fmt, "--source", tmp_path / "src", "--out", tmp_path / "ds",
                    *extra], capsys)


@pytest.mark.parametrize("fmt", GOOD)
def test_each_good_source_converts(tmp_path, fmt, capsys):
    (tmp_path / "src").mkdir()
    GOOD[fmt](tmp_path / "src")
    rc, err = convert(tmp_path, fmt, capsys)
    assert rc == 0, err
    m = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert m["counts"]["files_skipped"] == 0 and m["counts"]["non_finite_samples"] == 0 and m["skipped"] == []


# ---------------------------------------------------------------- the damage


def text_file(path, size=40):
    path.write_bytes(b"not a MATLAB file\n"[:size].ljust(size, b"x"))


def a_pickle(path):
    path.write_bytes(pickle.dumps({"sig": [1, 2, 3]}))


def mat(path, **variables):
    scipy.io.savemat(path, variables)


def troika_sig(src, sig):
    mat(src / "DATA_01_TYPE01.mat", sig=sig)


def set_pickle_bvp(path, bvp=None, label=None, not_a_dict=False):
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    if bvp is not None:
        d["signal"]["wrist"]["BVP"] = bvp
    if label is not None:
        d["label"] = label
    path.write_bytes(pickle.dumps([1, 2] if not_a_dict else d, protocol=2))


def with_nan(x, where, value=np.nan):
    x = np.array(x, dtype=np.float64)
    x.reshape(-1)[where] = value
    return x


def deepbeat_array(path, key, change):
    with np.load(path, allow_pickle=True) as z:
        arrays = dict(z)
    arrays[key] = change(arrays[key])
    np.savez(path, **arrays)


class Stub:
    """An object a pickle names by its class, as a pandas Timestamp would be."""

    def __init__(self):
        self.x = 1


def cells(*records):
    """A MATLAB cell array (n x 1) of ``records``."""
    out = np.empty((len(records), 1), dtype=object)
    for i, r in enumerate(records):
        out[i, 0] = r
    return out


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


# Each case: (format, damage(src), outcome). An outcome is ("error", needles): one line naming the
# file and saying what was expected; or ("skip", file, needle): that file skipped and listed, the
# rest converted (and --strict an error holding needle); or ("converts", check(manifest, ds)).
CASES = {
    # MATLAB files that are not: text or a pickle under a .mat name, short and long
    "troika-mat-text-short": ("troika", lambda s: text_file(s / "DATA_01_TYPE01.mat", 40),
                              ("skip", "DATA_01_TYPE01.mat", "not a readable MATLAB file")),
    "troika-mat-text-long": ("troika", lambda s: text_file(s / "DATA_01_TYPE01.mat", 1200),
                             ("skip", "DATA_01_TYPE01.mat", "not a readable MATLAB file")),
    "troika-mat-pickle": ("troika", lambda s: a_pickle(s / "DATA_01_TYPE01.mat"),
                          ("skip", "DATA_01_TYPE01.mat", "not a readable MATLAB file")),
    "troika-reference-text": ("troika", lambda s: text_file(s / "REF_01_TYPE01.mat", 60),
                              ("skip", "REF_01_TYPE01.mat", "not a readable MATLAB file")),
    "gyro-mat-text-short": ("gyro-acc-ppg", lambda s: text_file(s / "Subject_2.mat", 40),
                            ("skip", "Subject_2.mat", "not a readable MATLAB file")),
    "gyro-mat-pickle": ("gyro-acc-ppg", lambda s: a_pickle(s / "Subject_2.mat"),
                        ("skip", "Subject_2.mat", "not a readable MATLAB file")),
    "uci-mat-text-short": ("uci-bp", lambda s: text_file(s / "Part_2.mat", 40),
                           ("skip", "Part_2.mat", "not a readable MATLAB file")),
    "uci-mat-pickle": ("uci-bp", lambda s: a_pickle(s / "Part_2.mat"),
                       ("skip", "Part_2.mat", "not a readable MATLAB file")),
    "uci-mat73-truncated": ("uci-bp", lambda s: truncate(s / "Part_1.mat", 0.6),
                            ("skip", "Part_1.mat", "truncated or damaged")),
    # text where numbers are expected
    "troika-sig-text": ("troika", lambda s: troika_sig(s, np.array(["abc", "def"] * 3)),
                        ("skip", "DATA_01_TYPE01.mat", "sig holds text")),
    "gyro-sigppg-text": ("gyro-acc-ppg", lambda s: mat(s / "Subject_2.mat", sigPPG=np.array(["a" * 10] * 3),
                                                       timeECG=np.zeros(3), bpmECG=np.zeros(3)),
                         ("skip", "Subject_2.mat", "sigPPG holds text")),
    "uci-cell-text": ("uci-bp", lambda s: mat(s / "Part_2.mat", Part_2=cells(np.array(["x" * 20] * 3),
                                                                              uci_record(20, 120, 70, 3))),
                      ("skip", "record 1 of Part_2", "holds text")),
    "dalia-bvp-text": ("ppg-dalia", lambda s: set_pickle_bvp(s / "S2" / "S2.pkl", bvp=np.array(["n/a"] * 3000)),
                       ("skip", "S2.pkl", "signal.wrist.BVP holds text")),
    "wesad-bvp-text": ("wesad", lambda s: set_pickle_bvp(s / "S3" / "S3.pkl", bvp=np.array(["n/a"] * 3000)),
                       ("skip", "S3.pkl", "signal.wrist.BVP holds text")),
    "real-world-nan-text": ("real-world-ppg", lambda s: real_world_workbook(s / "test8.xlsx", 4,
                                                                             cells={(5, 2): "NaN"}),
                            ("skip", "test8.xlsx", "column 2 holds text")),
    "real-world-inf-text": ("real-world-ppg", lambda s: real_world_workbook(s / "test8.xlsx", 4,
                                                                             cells={(5, 1): "inf"}),
                            ("skip", "test8.xlsx", "column 1 holds text")),
    # zero-length signals
    "troika-sig-empty": ("troika", lambda s: troika_sig(s, np.zeros((6, 0))),
                         ("skip", "DATA_01_TYPE01.mat", "sig is empty")),
    "gyro-sigppg-empty": ("gyro-acc-ppg", lambda s: mat(s / "Subject_2.mat", sigPPG=np.zeros((3, 0)),
                                                        timeECG=np.zeros(3), bpmECG=np.zeros(3)),
                          ("skip", "Subject_2.mat", "sigPPG is empty")),
    "dalia-bvp-empty": ("ppg-dalia", lambda s: set_pickle_bvp(s / "S2" / "S2.pkl", bvp=np.zeros((0, 1))),
                        ("skip", "S2.pkl", "BVP is empty")),
    "wesad-bvp-empty": ("wesad", lambda s: set_pickle_bvp(s / "S3" / "S3.pkl", bvp=np.zeros((0, 1))),
                        ("skip", "S3.pkl", "BVP is empty")),
    "dalia-not-a-dict": ("ppg-dalia", lambda s: set_pickle_bvp(s / "S2" / "S2.pkl", not_a_dict=True),
                         ("skip", "S2.pkl", "expected a dict")),
    "deepbeat-part-empty": ("deepbeat", lambda s: np.savez(s / "test.npz", signal=np.zeros((0, 800, 1)),
                                                          rhythm=np.zeros((0, 2)), qa_label=np.zeros((0, 3)),
                                                          parameters=np.zeros((0, 3), dtype=object)),
                            ("error", ["test.npz", "array 'signal' has shape (0,"])),
    "real-world-empty-sheet": ("real-world-ppg", lambda s: real_world_workbook(s / "test8.xlsx", 0),
                               ("skip", "test8.xlsx", "the first sheet is empty")),
    "real-world-all-empty": ("real-world-ppg", lambda s: (real_world_workbook(s / "test8.xlsx", 0),
                                                          real_world_workbook(s / "train8.xlsx", 0)),
                             ("error", ["no file could be converted", "the first sheet is empty"])),
    "deepbeat-truncated": ("deepbeat", lambda s: truncate(s / "test.npz", 0.5), ("error", ["test.npz"])),
    # labels never invented
    "deepbeat-rhythm-nan": ("deepbeat", lambda s: deepbeat_array(s / "test.npz", "rhythm",
                                                                 lambda a: with_nan(a, [6, 7])),
                            ("error", ["test.npz", "rhythm row 4 is [nan, nan]", "one-hot"])),
    "deepbeat-rhythm-zero": ("deepbeat", lambda s: deepbeat_array(s / "test.npz", "rhythm",
                                                                  lambda a: with_nan(a, [0, 1], 0.0)),
                             ("error", ["test.npz", "rhythm row 1 is [0.0, 0.0]"])),
    "deepbeat-quality-two-ones": ("deepbeat", lambda s: deepbeat_array(s / "validate.npz", "qa_label",
                                                                       lambda a: with_nan(a, [3, 4, 5], 1.0)),
                                  ("error", ["validate.npz", "qa_label row 2 is [1.0, 1.0, 1.0]"])),
    "deepbeat-subject-object": ("deepbeat", lambda s: deepbeat_array(
        s / "validate.npz", "parameters", lambda a: (a.__setitem__((0, 2), Stub()), a)[1]),
        ("error", ["validate.npz", "subject of parameters row 1", "expected a plain identifier"])),
    "wesad-label-nan": ("wesad", lambda s: set_pickle_bvp(s / "S3" / "S3.pkl",
                                                          label=with_nan(np.repeat([0, 1, 1, 2, 3, 4], 7000), 5)),
                        ("skip", "S3.pkl", "label holds values other than")),
    "dalia-label-nan-inf": ("ppg-dalia", lambda s: set_pickle_bvp(s / "S2" / "S2.pkl",
                                                                  label=with_nan(np.full(17, 95.0), [0, 3, 5],
                                                                                 [np.nan, np.inf, -np.inf])),
                            ("converts", lambda m, ds: (m["counts"]["non_finite_labels_heart_rate"] == 3
                                                        and m["counts"]["labelled_heart_rate"] == 31))),
    "troika-reference-nan": ("troika", lambda s: mat(s / "REF_01_TYPE01.mat",
                                                     BPM0=with_nan(np.full((12, 1), 100.0), [2, 4])),
                             ("converts", lambda m, ds: (m["counts"]["non_finite_labels_heart_rate"] == 2
                                                         and m["counts"]["labelled_heart_rate"] == 22))),
    "but-hr-nan-inf": ("but-ppg", lambda s: but_csvs(s, ["112001", "112002", "113001"], ("nan", "inf", 84)),
                       ("converts", lambda m, ds: (m["counts"]["non_finite_labels_heart_rate"] == 2
                                                   and m["counts"]["labelled_heart_rate"] == 1))),
    "but-header-garbage": ("but-ppg", lambda s: (s / "112002" / "112002_PPG.hea").write_bytes(b"\x00\xff garbage"),
                           ("skip", "112002_PPG.hea", "WFDB")),
    # non-finite samples: kept as missing and counted, never 0 or 1.8e308
    "troika-ppg-nan-inf": ("troika", lambda s: troika_sig(
        s, with_nan(np.vstack([np.zeros(3750), pulse(30, 125, 100), *np.zeros((4, 3750))]),
                    [3750 + 10, 3750 + 11, 3750 + 500], [np.nan, np.inf, -np.inf])),
        ("converts", lambda m, ds: m["non_finite_samples"] == {"records/data_01_type01": 3})),
    "gyro-ppg-nan": ("gyro-acc-ppg", lambda s: mat(s / "Subject_2.mat", sigPPG=with_nan(
        np.vstack([pulse(40, 50, 140)] * 3), [5, 6]), timeECG=np.arange(0.4, 40, 60 / 140)[:, None],
        bpmECG=np.full((93, 1), 140.0)),
        ("converts", lambda m, ds: m["non_finite_samples"] == {"records/subject_02": 2})),
    "uci-ppg-nan": ("uci-bp", lambda s: mat(s / "Part_2.mat", Part_2=cells(
        with_nan(uci_record(20, 110, 60, 2), [7, 8]), uci_record(20, 120, 70, 3))),
        ("converts", lambda m, ds: m["non_finite_samples"] == {"records/part_2_0001": 2})),
    "uci-abp-nan": ("uci-bp", lambda s: mat(s / "Part_2.mat", Part_2=cells(
        with_nan(uci_record(20, 110, 60, 2), [2500 + 1]), uci_record(20, 120, 70, 3))),
        ("converts", lambda m, ds: m["counts"]["windows_skipped_by_pressure_rules"] == 1)),
    "dalia-bvp-nan-inf": ("ppg-dalia", lambda s: set_pickle_bvp(
        s / "S2" / "S2.pkl", bvp=with_nan((pulse(40, 64, 95, 1) * 50)[:, None], [1, 2, 3], np.inf)),
        ("converts", lambda m, ds: m["non_finite_samples"] == {"records/S2": 3})),
    "wesad-bvp-inf": ("wesad", lambda s: set_pickle_bvp(
        s / "S3" / "S3.pkl", bvp=with_nan((pulse(60, 64, 80) * 40)[:, None], [100], -np.inf)),
        ("converts", lambda m, ds: m["non_finite_samples"] == {"records/S3": 1})),
    "deepbeat-signal-nan": ("deepbeat", lambda s: deepbeat_array(s / "validate.npz", "signal",
                                                                 lambda a: with_nan(a, [0, 801, 1600])),
                            ("converts", lambda m, ds: m["non_finite_samples"] == {"window 0": 1, "window 1": 1,
                                                                                   "window 2": 1})),
}


@pytest.mark.parametrize("case", CASES)
def test_damaged_source(tmp_path, case, capsys):
    fmt, damage, outcome = CASES[case]
    src = tmp_path / "src"
    src.mkdir()
    GOOD[fmt](src)
    damage(src)
    rc, err = convert(tmp_path, fmt, capsys)
    if outcome[0] == "error":
        assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], err
        assert all(n in err[0] for n in outcome[1]), err[0]
        assert not (tmp_path / "ds").exists()
        return
    assert rc == 0, err
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    if outcome[0] == "skip":
        _, name, needle = outcome
        assert manifest["counts"]["files_skipped"] == 1, manifest["skipped"]
        assert name in manifest["skipped"][0]["file"] + manifest["skipped"][0]["reason"]
        assert needle in manifest["skipped"][0]["reason"], manifest["skipped"]
        assert manifest["counts"]["examples"] > 0
        rc, err = convert(tmp_path, fmt, capsys, "--force", "--strict")
        assert rc == 2 and len(err) == 1 and name in err[0] and needle in err[0], err
        assert (tmp_path / "ds" / "manifest.json").exists()  # the earlier output is kept
        return
    assert outcome[1](manifest, tmp_path / "ds"), manifest["counts"]
    labels = pl.read_csv(tmp_path / "ds" / "labels.csv", infer_schema_length=0)
    for task in manifest["counts"]:
        if task.startswith("labelled_"):
            column = labels[task.removeprefix("labelled_")]
            assert not column.str.contains("(?i)nan|inf").any()  # unlabelled, never a NaN label


def test_non_finite_samples_read_back_as_missing(tmp_path, capsys):
    """NaN and infinite samples are WFDB's invalid value on disk and NaN when read, never 0 or
    1.8e308; the profile's rule then decides their windows (the release's drops any window with
    one)."""
    import wfdb

    from cohorts.probe_data import load_probe_dataset
    src = tmp_path / "src"
    src.mkdir()
    troika(src)
    CASES["troika-ppg-nan-inf"][1](src)
    assert convert(tmp_path, "troika", capsys)[0] == 0
    x = wfdb.rdrecord(str(tmp_path / "ds" / "records" / "data_01_type01")).p_signal[:, 0]
    assert np.isnan(x[[10, 11, 500]]).all() and np.isfinite(np.delete(x, [10, 11, 500])).all()
    d = load_probe_dataset(tmp_path / "ds")
    assert d.rejected  # the windows holding them, and only those, are left out
    assert np.isfinite(np.asarray(d.windows, np.float32)).all()


def test_a_skipped_file_leaves_nothing_behind(tmp_path, capsys):
    """A UCI file whose second record is damaged: the first record's signal, written before the
    damage was found, is removed with the file's examples."""
    src = tmp_path / "src"
    src.mkdir()
    uci(src)
    mat(src / "Part_2.mat", Part_2=cells(uci_record(20, 110, 60, 2), np.array(["x"] * 3)))
    assert convert(tmp_path, "uci-bp", capsys)[0] == 0
    m = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert m["counts"]["files_skipped"] == 1 and "record 2 of Part_2" in m["skipped"][0]["file"]
    records = sorted(p.stem for p in (tmp_path / "ds" / "records").glob("*.hea"))
    labels = pl.read_csv(tmp_path / "ds" / "labels.csv")
    assert sorted({r.split("/")[1] for r in labels["record"]}) == records
    assert "part_2_0001" in records  # a damaged record skips itself, not its neighbours


# ---------------------------------------------------------------- property tests of the readers

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

DTYPES = st.sampled_from([np.float64, np.float32, np.int16, np.uint16, np.int64, np.bool_, np.complex64, "U3",
                          "S2", object])
# signals as files hold them: a row, a column, several channels, nothing; short and long enough
SHAPES = st.one_of(st.tuples(st.integers(0, 1500)), st.tuples(st.integers(0, 1500), st.just(1)),
                   st.tuples(st.just(1), st.integers(0, 1500)), st.tuples(st.integers(2, 4), st.integers(0, 300)),
                   st.just(()))
ELEMENTS = st.floats(width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.5])


def arrays():
    def build(dtype, shape, data):
        if dtype is object:  # a pickle's object array: numbers, text, None
            pool = data.draw(st.lists(st.one_of(st.floats(), st.text(max_size=3), st.none()), min_size=1,
                                      max_size=5))
            return np.resize(np.array(pool, dtype=object), shape)
        kind = np.dtype(dtype).kind
        elements = ELEMENTS if kind == "f" else None
        if kind == "c":
            elements = st.complex_numbers(allow_nan=True, width=64)
        return data.draw(hnp.arrays(dtype, shape, elements=elements))
    return st.tuples(DTYPES, SHAPES, st.data()).map(lambda t: build(*t))


@settings(max_examples=150, deadline=None)
@given(arrays())
def test_signal_reader_accepts_or_refuses_in_one_line(x):
    """Any array: a 1-D float64 signal of the minimum length with infinities as NaN, or an
    InputError naming the file and the variable."""
    try:
        out = validate.signal("f.mat", "sig", x, fs=10, min_seconds=1, what="a signal")
    except InputError as err:
        assert str(err).startswith("f.mat: sig ") and "\n" not in str(err)
        return
    assert out.dtype == np.float64 and out.ndim == 1 and len(out) >= 10
    assert not np.isinf(out).any()
    ref = np.asarray(x).astype(np.float64).reshape(-1)
    np.testing.assert_array_equal(out[np.isfinite(ref)], ref[np.isfinite(ref)])


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(0, 20), st.integers(1, 4)),
                  elements=st.sampled_from([0.0, 1.0, np.nan, 2.0, -1.0])))
def test_one_hot_reader_never_invents_a_class(rows):
    """Rows of 0, 1, NaN and others: the class of each row that is exactly one-hot, or an error
    naming the first row that is not (counted from 1)."""
    k = rows.shape[1]
    try:
        got = validate.one_hot("p.npz", "rhythm", rows, classes=k)
    except InputError as err:
        bad = [i for i, r in enumerate(rows) if not (np.isin(r, (0, 1)).all() and r.sum() == 1)]
        assert bad and f"rhythm row {bad[0] + 1} is" in str(err)
        return
    assert (rows[np.arange(len(rows)), got] == 1).all() and (rows.sum(axis=1) == 1).all()


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=4), st.integers(-5, 10 ** 6), st.floats(), st.binary(max_size=4), st.none(),
                 st.booleans(), st.builds(Stub)))
def test_identifier_is_plain_text_or_an_error(value):
    try:
        out = validate.identifier("p.npz", value, where="row 3")
    except InputError as err:
        assert "subject of row 3" in str(err)
        return
    assert isinstance(out, str) and out and out == out.strip()


def dalia_source(folder, bvp, label):
    (folder / "S1").mkdir(parents=True, exist_ok=True)
    d = {"signal": {"wrist": {"BVP": bvp}}, "label": label, "activity": np.ones((len(np.ravel(label)) * 8, 1))}
    (folder / "S1" / "S1.pkl").write_bytes(pickle.dumps(d, protocol=2))


@settings(max_examples=25, deadline=None)
@given(bvp=arrays(), label=hnp.arrays(np.float64, st.integers(0, 6),
                                      elements=st.sampled_from([70.0, np.nan, np.inf, 80.0])))
def test_a_converter_converts_or_fails_in_one_line(tmp_path_factory, bvp, label):
    """PPG-DaLiA's converter on random BVP arrays and labels with NaN and infinities: exit 0 with
    every non-finite label counted as unlabelled and every non-finite sample counted, or exit 2 with
    one line naming the file."""
    from phewas.cli import main
    tmp = tmp_path_factory.mktemp("prop")
    dalia_source(tmp / "src", bvp, label)
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["convert-dataset", "--format", "ppg-dalia", "--source", str(tmp / "src"), "--out",
                   str(tmp / "ds"), "--quiet", "--strict"])
    lines = err.getvalue().strip().splitlines()
    if rc == 2:  # the file, or the source when the file holds no example
        assert len(lines) == 1 and ("S1.pkl" in lines[0] or "no example" in lines[0]), lines
        assert not (tmp / "ds").exists()
        return
    assert rc == 0
    m = json.loads((tmp / "ds" / "manifest.json").read_text())
    assert m["counts"].get("non_finite_labels_heart_rate", 0) == int((~np.isfinite(label)).sum())
    assert m["counts"].get("labelled_heart_rate", 0) == int(np.isfinite(label).sum())
    flat = np.asarray(bvp).astype(np.float64).reshape(-1)
    assert m["counts"]["non_finite_samples"] == int((~np.isfinite(flat)).sum())
