"""``phewas convert-dataset``: each converter on small files written in its dataset's published
layout (with each version's quirks), and a one-line error naming the file where a file is not what
the layout says. The real files, where they are here, are read in ``tests/app/test_real_data.py``."""

import pickle

import numpy as np
import polars as pl
import pytest
import scipy.io
from helpers import (
    but_v1_record,
    but_v2_record,
    dalia_pickle,
    deepbeat_part,
    gyro_subject,
    pulse,
    uci_record,
    write_mat73,
)

from cohorts.converters import FORMATS, convert_dataset
from cohorts.probe_data import load_probe_dataset
from phewas.base.errors import InputError
from phewas.cli import main


def labels(folder) -> pl.DataFrame:
    return pl.read_csv(folder / "labels.csv", infer_schema_length=0)


def test_every_format_has_a_converter():
    assert set(FORMATS) == {"ppg-dalia", "but-ppg", "uci-bp", "gyro-acc-ppg", "deepbeat", "wesad", "real-world-ppg",
                            "troika"}


# ---------------------------------------------------------------- PPG-DaLiA

def test_ppg_dalia(tmp_path):
    src = tmp_path / "PPG_FieldStudy"
    dalia_pickle(src / "S1" / "S1.pkl", hr=70)
    dalia_pickle(src / "S2" / "S2.pkl", hr=95, seed=1)
    assert main(["convert-dataset", "--format", "ppg-dalia", "--source", str(src), "--out", str(tmp_path / "ds"),
                 "--quiet"]) == 0
    d = load_probe_dataset(tmp_path / "ds")
    assert d.tasks == {"heart_rate": "regression", "activity": "multiclass"}
    assert d.labels.height == 2 * 17 and set(d.labels["subject"]) == {"S1", "S2"}
    assert d.labels.filter(pl.col("subject") == "S2")["heart_rate"].unique().to_list() == [95.0]
    assert d.labels.row(0, named=True)["activity"] is None  # 5 s of the transient id 0 in its 8 s: unlabelled
    assert d.labels["activity"].drop_nulls().unique().to_list() == ["3"]
    assert d.windows.shape[0] == d.labels.height  # 8-s windows: one padded window each


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    bad = tmp_path / "evil" / "S1"
    bad.mkdir(parents=True)

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))
    (bad / "S1.pkl").write_bytes(pickle.dumps({"signal": Boom()}, protocol=2))
    with pytest.raises(InputError, match=r"refused to load (__builtin__|builtins)\.print"):
        convert_dataset("ppg-dalia", tmp_path / "evil", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


# ---------------------------------------------------------------- BUT PPG, both versions

def test_but_ppg_2_0_0(tmp_path):
    src = tmp_path / "butppg"
    ids, rates = ["112001", "112002", "113001"], (60, 72, 84)
    for k, (rid, bpm) in enumerate(zip(ids, rates)):
        but_v2_record(src, rid, bpm, k)
    (src / "quality-hr-ann.csv").write_text("\ufeffID,Quality,HR\n" + "".join(
        f"{rid},{q},{hr}\n" for rid, q, hr in zip(ids, (1, 0, 1), rates)), encoding="utf-8")
    (src / "subject-info.csv").write_text(
        "\ufeffID,Gender,Age [years],Height [cm],Weight [kg],Ear/finger,Motion,Blood pressure [mmHg],"
        "Glycaemia [mmol/l],SpO2 [%]\n"
        "112001,F,30,170,60,1,0,128/76,5.1,98\n112002,F,30,170,60,1,1,,5.1,98\n113001,M,55,180,80,0,0,141/90,,97\n",
        encoding="utf-8")
    m = convert_dataset("but-ppg", src, tmp_path / "ds")
    assert m["notes"]["version"] == "2.0.0" and m["counts"]["examples"] == 3
    d = load_probe_dataset(tmp_path / "ds")
    assert d.tasks == {"quality": "binary", "heart_rate": "regression", "sbp": "regression", "dbp": "regression",
                       "age": "regression"}
    assert d.labels["subject"].to_list() == ["112", "112", "113"]
    assert d.labels["sbp"].to_list() == [128.0, None, 141.0] and d.labels["dbp"].to_list() == [76.0, None, 90.0]
    assert d.labels["quality"].to_list() == ["1", "0", "1"] and d.labels["age"].to_list() == [30.0, 30.0, 55.0]


def test_but_ppg_1_0_0_headers(tmp_path):
    src = tmp_path / "butppg"
    ids = ["100001", "100002", "101001"]
    for k, rid in enumerate(ids):
        but_v1_record(src, rid, 70 + 10 * k, k)
    (src / "quality-hr-ann.csv").write_text("\ufeffID,Quality,HR\n100001,1,70\n100002,1,80\n101001,0,90\n",
                                            encoding="utf-8")
    (src / "subject-info.csv").write_text("\ufeffID,Gender,Age,Weight,Motion\n100001,F,51,58,0\n100002,F,51,58,0\n"
                                          "101001,M,40,80,1\n", encoding="utf-8")
    m = convert_dataset("but-ppg", src, tmp_path / "ds")
    assert m["notes"] == {"version": "1.0.0", "tasks_without_labels": ["sbp", "dbp"]}
    from cohorts.converters.but_ppg import read_ppg
    x = read_ppg(src / "100002" / "100002_PPG.hea")
    np.testing.assert_allclose(x, 250 + pulse(10, 30, 80, 1), atol=1e-2)  # the gains' four decimals
    d = load_probe_dataset(tmp_path / "ds")
    assert set(d.tasks) == {"quality", "heart_rate", "age"} and d.labels["age"].to_list() == [51.0, 51.0, 40.0]


@pytest.mark.parametrize("fault,needle", [
    ("no_column", "no column 'HR'"),
    ("bad_pressure", "column 'Blood pressure [mmHg]'"),
    ("bad_header", "expected 300 samples"),
    ("bad_id", "is not six digits"),
])
def test_but_ppg_errors_name_the_file(tmp_path, fault, needle):
    src = tmp_path / "butppg"
    but_v2_record(src, "112001", 70, 0)
    quality = "\ufeffID,Quality,HR\n112001,1,70\n" if fault != "no_column" else "\ufeffID,Quality\n112001,1\n"
    if fault == "bad_id":
        quality = "\ufeffID,Quality,HR\n11a001,1,70\n"
    (src / "quality-hr-ann.csv").write_text(quality, encoding="utf-8")
    pressure = "high" if fault == "bad_pressure" else "120/80"
    (src / "subject-info.csv").write_text(f"ID,Age [years],Blood pressure [mmHg]\n112001,30,{pressure}\n")
    if fault == "bad_header":
        (src / "112001" / "112001_PPG.hea").write_text("112001_PPG 1 30 1\n112001_PPG.dat 16 1000/NU 0 0 0 0 0 PPG\n")
    with pytest.raises(InputError, match=None) as err:
        convert_dataset("but-ppg", src, tmp_path / "ds")
    assert needle in str(err.value)
    assert not (tmp_path / "ds").exists()


# ---------------------------------------------------------------- UCI-BP

def test_uci_bp_mat73_and_mat5(tmp_path):
    pytest.importorskip("h5py")
    src = tmp_path / "uci"
    src.mkdir()
    write_mat73(src / "Part_1.mat", "Part_1", [uci_record(35, 130, 70, 0), uci_record(12, 150, 90, 1)])
    cells = np.empty((1, 1), dtype=object)
    cells[0, 0] = uci_record(20, 110, 60, 2)
    scipy.io.savemat(src / "Part_2.mat", {"Part_2": cells})  # a version 5 copy
    m = convert_dataset("uci-bp", src, tmp_path / "ds")
    lab = labels(tmp_path / "ds")
    assert m["counts"]["examples"] == 3 + 1 + 2 and lab["subject"].unique(maintain_order=True).to_list() == \
        ["part_1_0001", "part_1_0002", "part_2_0001"]
    sbp, dbp = lab["sbp"].cast(float).to_numpy(), lab["dbp"].cast(float).to_numpy()
    np.testing.assert_allclose(sbp, [130] * 3 + [150] + [110] * 2, atol=2.0)  # the sampled beats
    np.testing.assert_allclose(dbp, [70] * 3 + [90] + [60] * 2, atol=2.0)
    d = load_probe_dataset(tmp_path / "ds")
    assert d.windows.shape[0] == 6


def test_uci_bp_errors(tmp_path):
    src = tmp_path / "uci"
    src.mkdir()
    cells = np.empty((1, 1), dtype=object)
    cells[0, 0] = np.zeros((2, 2000))
    scipy.io.savemat(src / "Part_1.mat", {"Part_1": cells})
    with pytest.raises(InputError, match="record 1 of Part_1 has shape"):
        convert_dataset("uci-bp", src, tmp_path / "ds")
    scipy.io.savemat(src / "Part_1.mat", {"other": cells})
    with pytest.raises(InputError, match="Part_1.mat.*no variable 'Part_1'"):
        convert_dataset("uci-bp", src, tmp_path / "ds")
    with pytest.raises(InputError, match="nothing_here: not a folder"):
        convert_dataset("uci-bp", tmp_path / "nothing_here", tmp_path / "ds")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no \\[Pp\\]art_\\*.mat files"):
        convert_dataset("uci-bp", tmp_path / "empty", tmp_path / "ds")


# ---------------------------------------------------------------- Gyro-Acc-PPG

def test_gyro_acc_ppg(tmp_path):
    src = tmp_path / "gyro"
    src.mkdir()
    gyro_subject(src / "Subject_1.mat", 90)
    gyro_subject(src / "Subject_2.mat", 140)
    convert_dataset("gyro-acc-ppg", src, tmp_path / "ds")
    lab = labels(tmp_path / "ds")
    assert lab.height == 8 and lab["subject"].unique().sort().to_list() == ["1", "2"]
    np.testing.assert_allclose(lab["heart_rate"].cast(float).to_numpy(), [90] * 4 + [140] * 4)
    assert load_probe_dataset(tmp_path / "ds").windows.shape[0] == 8
    scipy.io.savemat(src / "Subject_3.mat", {"sigPPG": np.zeros((3, 100))})
    m = convert_dataset("gyro-acc-ppg", src, tmp_path / "ds2")  # the damaged file skipped and listed
    assert m["counts"]["files_skipped"] == 1 and m["counts"]["examples"] == 8
    assert m["skipped"][0]["file"].endswith("Subject_3.mat") and "no variable 'timeECG'" in m["skipped"][0]["reason"]
    with pytest.raises(InputError, match="Subject_3.mat.*no variable 'timeECG'"):
        convert_dataset("gyro-acc-ppg", src, tmp_path / "ds3", strict=True)


# ---------------------------------------------------------------- DeepBeat

def test_deepbeat_official_parts_streamed(tmp_path, monkeypatch):
    src = tmp_path / "deepbeat"
    src.mkdir()
    deepbeat_part(src / "validate.npz", 12, 3, ["149", "150"], compressed=False)
    deepbeat_part(src / "test.npz", 6, 2, ["149"], compressed=True)
    (src / "train.npz").write_bytes(b"")  # the augmented training part is not read
    import cohorts.converters.deepbeat as deepbeat
    monkeypatch.setattr(deepbeat, "CHUNK_ROWS", 5)  # streamed in several chunks
    convert_dataset("deepbeat", src, tmp_path / "ds")
    lab = labels(tmp_path / "ds")
    assert lab.height == 18 and lab["split"].to_list() == ["train"] * 12 + ["test"] * 6
    assert lab["subject"].to_list()[:2] == ["validate:149", "validate:150"] and lab["subject"][12] == "test:149"
    assert lab["af"].to_list() == ["1", "0", "0"] * 4 + ["1", "0"] * 3
    windows = np.load(tmp_path / "ds" / "windows.npy")
    with np.load(src / "test.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(windows[12:], z["signal"][:, :, 0].astype(np.float32))
    d = load_probe_dataset(tmp_path / "ds")
    assert d.windows.shape[0] == 2 * 18  # 25 s: two 10-s windows each


def test_deepbeat_parameters_are_read_without_running_their_pickle(tmp_path, capsys):
    src = tmp_path / "deepbeat"
    src.mkdir()

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))
    for part, n in (("validate", 4), ("test", 2)):
        deepbeat_part(src / f"{part}.npz", n, 2, ["7"], compressed=False)
        with np.load(src / f"{part}.npz", allow_pickle=True) as z:
            arrays = dict(z)
        arrays["parameters"][0, 0] = Boom()
        np.savez(src / f"{part}.npz", **arrays)
    convert_dataset("deepbeat", src, tmp_path / "ds")
    assert "pwned" not in capsys.readouterr().out
    assert labels(tmp_path / "ds")["subject"][0] == "validate:7"


def test_deepbeat_errors(tmp_path):
    src = tmp_path / "deepbeat"
    src.mkdir()
    deepbeat_part(src / "validate.npz", 4, 2, ["1"], compressed=False)
    with pytest.raises(InputError, match="test.npz: not found"):
        convert_dataset("deepbeat", src, tmp_path / "ds")
    np.savez(src / "test.npz", signal=np.zeros((3, 700, 1)), rhythm=np.zeros((3, 2)), qa_label=np.zeros((3, 3)),
             parameters=np.zeros((3, 3)))
    with pytest.raises(InputError, match="test.npz: array 'signal' has shape"):
        convert_dataset("deepbeat", src, tmp_path / "ds")


# ---------------------------------------------------------------- WESAD

def test_wesad_four_states(tmp_path):
    src = tmp_path / "WESAD"
    for k, subject in enumerate(("S2", "S3")):
        (src / subject).mkdir(parents=True)
        seconds = 60
        label = np.repeat([0, 1, 1, 2, 3, 4], 10 * 700)  # 10 s each: transient, baseline x2, stress, amusement, ...
        label[25 * 700:26 * 700] = 0  # a transient inside the second baseline window
        d = {"signal": {"wrist": {"BVP": (pulse(seconds, 64, 70 + k) * 40)[:, None]},
                        "chest": {"ECG": np.zeros((seconds * 700, 1))}},
             "label": label, "subject": subject}
        (src / subject / f"{subject}.pkl").write_bytes(pickle.dumps(d, protocol=2))
    m = convert_dataset("wesad", src, tmp_path / "ds")
    lab = labels(tmp_path / "ds")
    assert lab.filter(pl.col("subject") == "S2")["affect"].to_list() == ["baseline", "stress", "amusement",
                                                                         "meditation"]
    assert m["counts"]["windows_spanning_two_states"] == 2
    (src / "S4").mkdir()
    (src / "S4" / "S4.pkl").write_bytes(pickle.dumps({"signal": {}, "label": np.zeros(3)}, protocol=2))
    with pytest.raises(InputError, match="S4.pkl: missing 'wrist'"):
        convert_dataset("wesad", src, tmp_path / "ds2", strict=True)
    assert convert_dataset("wesad", src, tmp_path / "ds3")["counts"]["files_skipped"] == 1


# ---------------------------------------------------------------- Real-World PPG

def test_real_world_ppg_workbooks(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    src = tmp_path / "yynb8t9x3d-2"
    src.mkdir()
    for part, n in (("train", 3), ("test", 2)):
        book = openpyxl.Workbook()
        sheet = book.active
        for j in range(n * 2):
            subject = 1 + j % 2
            x = np.round(500 + 100 * pulse(6, 50, 60 + 20 * subject, j)).astype(int)
            for i, v in enumerate([*x.tolist(), subject], start=1):
                sheet.cell(row=i, column=j + 1, value=v)
        book.save(src / f"{part}8.xlsx")
    convert_dataset("real-world-ppg", src, tmp_path / "ds")
    lab = labels(tmp_path / "ds")
    assert lab["split"].to_list() == ["train"] * 6 + ["test"] * 4 and "subject" not in lab.columns
    assert lab["subject_id"].to_list() == ["1", "2"] * 5
    assert np.load(tmp_path / "ds" / "windows.npy").shape == (10, 300)
    sheet.cell(row=3, column=1, value="n/a")
    book.save(src / "test8.xlsx")
    with pytest.raises(InputError, match="test8.xlsx.*column 1 holds text"):
        convert_dataset("real-world-ppg", src, tmp_path / "ds2", strict=True)
    m = convert_dataset("real-world-ppg", src, tmp_path / "ds3")  # the training workbook alone
    assert m["counts"]["files_skipped"] == 1 and m["counts"]["examples"] == 6


# ---------------------------------------------------------------- TROIKA

def test_troika_both_reference_names(tmp_path):
    src = tmp_path / "troika"
    src.mkdir()
    for nn, kind, name in (("01", "01", "REF_01_TYPE01.mat"), ("02", "02", "DATA_02_TYPE02_BPMtrace.mat")):
        seconds = 30
        ppg = pulse(seconds, 125, 100)
        scipy.io.savemat(src / f"DATA_{nn}_TYPE{kind}.mat", {"sig": np.vstack([np.zeros_like(ppg), ppg, ppg,
                                                                              *np.zeros((3, len(ppg)))])})
        scipy.io.savemat(src / name, {"BPM0": np.full((12, 1), 100.0)})
    convert_dataset("troika", src, tmp_path / "ds")
    lab = labels(tmp_path / "ds")
    assert lab.height == 24 and lab["start_s"].cast(float).to_list()[:3] == [0.0, 2.0, 4.0]
    assert lab["subject"].unique().sort().to_list() == ["01", "02"]
    (src / "REF_01_TYPE01.mat").unlink()
    with pytest.raises(InputError, match="DATA_01_TYPE01.mat: no reference heart rate"):
        convert_dataset("troika", src, tmp_path / "ds2", strict=True)
    m = convert_dataset("troika", src, tmp_path / "ds3")
    assert m["counts"]["files_skipped"] == 1 and m["counts"]["examples"] == 12
