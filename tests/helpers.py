"""Helpers that several test files share (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import numpy as np
import polars as pl
import scipy.io


def released_file(folder: Path, family: str, drop=(), extra=None) -> Path:
    """Random weights of a family's released network (:mod:`encoder.families`) saved in its
    release format (PaPaGei-S: ``module.`` prefix and a multi-task head; Pulse-PPG: ``{"net": ...}``),
    less the keys starting with ``drop`` and with ``extra`` added."""
    import torch

    from encoder import families

    torch.manual_seed(0)
    net = families.build(families.FAMILIES[family].released())
    state = {k: v for k, v in getattr(net, "encoder", net).state_dict().items() if not k.startswith(tuple(drop))}
    state.update(extra or {})
    if family == "papagei-s":
        state = {f"module.{k}": v for k, v in state.items()} | {"module.expert_layers_0.0.weight": torch.zeros(2)}
    path = Path(folder) / f"{family}-{len(drop)}-{len(extra or {})}.pt"
    torch.save({"net": state, "epoch": 3} if family == "pulse-ppg" else state, path)
    return path


def run_cli(args, capsys):
    """``phewas ARGS --quiet``: its exit status and the lines it printed to stderr."""
    from phewas.cli import main

    rc = main([*map(str, args), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def one_line_error(args, capsys, *needles):
    """Run the CLI and check it ends in one line holding each of ``needles``, with exit status 2."""
    rc, err = run_cli(args, capsys)
    assert rc == 2 and len(err) == 1, (rc, err)
    for n in needles:
        assert n in err[0], (n, err[0])
    assert "Traceback" not in err[0]
    return err[0]


# ---------------------------------------------------------------- public datasets' published layouts
# Small files written as each dataset's publisher ships them (the converters' tests and the
# damaged-input tests start from these).

def pulse(seconds: float, fs: float, bpm: float, seed: int = 0) -> np.ndarray:
    """A pulse-like wave with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    phase = 2 * np.pi * bpm / 60 * t
    return np.sin(phase) + 0.4 * np.sin(2 * phase + 0.7) + 0.05 * rng.normal(size=len(t))

def dalia_pickle(path, seconds=40, hr=75.0, seed=0):
    t = np.arange(int(seconds * 64)) / 64
    bvp = (pulse(seconds, 64, hr, seed) * 50)[:, None]
    n_labels = int((seconds - 8) / 2) + 1
    d = {"signal": {"wrist": {"BVP": bvp, "ACC": np.zeros((len(t) // 2, 3))}},
         "label": np.full(n_labels, hr), "activity": np.r_[np.zeros(20), np.full(seconds * 4 - 20, 3)][:, None],
         "subject": path.stem}
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(d, protocol=2))

def but_v2_record(folder, rid, bpm, seed):
    import wfdb
    (folder / rid).mkdir(parents=True)
    x = pulse(10, 30, bpm, seed)
    sig = np.stack([x * c for c in (3, 2, 1)], 1)
    wfdb.wrsamp(f"{rid}_PPG", fs=30, units=["NU"] * 3, sig_name=["PPG_R", "PPG_G", "PPG_B"], p_signal=sig,
                fmt=["16"] * 3, adc_gain=[1000.0] * 3, baseline=[0] * 3, write_dir=str(folder / rid))

def but_v1_record(folder, rid, bpm, seed):
    """Version 1.0.0's header: 300 signals of one sample, each value carried by its gain and
    baseline, the .dat all zeros."""
    (folder / rid).mkdir(parents=True)
    x = 250 + pulse(10, 30, bpm, seed)
    lines = [f"{rid}_PPG 300 30 1"] + [f"{rid}_PPG.dat 16 {32767 / v:.4f}(-32767)/a.u. 0 0 0 0 0" for v in x]
    (folder / rid / f"{rid}_PPG.hea").write_text("\n".join(lines) + "\n")
    (folder / rid / f"{rid}_PPG.dat").write_bytes(bytes(600))

def arterial(seconds, sbp, dbp, bpm, fs=125):
    """A pressure wave between ``dbp`` and ``sbp`` (mmHg)."""
    t = np.arange(int(seconds * fs)) / fs
    phase = (t * bpm / 60) % 1
    shape = np.exp(-((phase - 0.2) / 0.08) ** 2) + 0.3 * np.exp(-((phase - 0.55) / 0.1) ** 2)
    shape = (shape - shape.min()) / (shape.max() - shape.min())
    return dbp + (sbp - dbp) * shape

def uci_record(seconds, sbp, dbp, seed):
    ppg = pulse(seconds, 125, 75, seed)
    return np.vstack([ppg, arterial(seconds, sbp, dbp, 75), np.zeros_like(ppg)])  # 3 x N: PPG, ABP, ECG

def write_mat73(path, name, records):
    """A MATLAB 7.3 file as MATLAB writes one: a 512-byte user block opening with MATLAB's header,
    then HDF5 with the cell array as references to datasets in #refs#, each stored transposed."""
    import h5py
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        handles = []
        for i, rec in enumerate(records):
            refs.create_dataset(f"r{i}", data=np.asarray(rec).T)
            handles.append(refs[f"r{i}"].ref)
        cell = f.create_dataset(name, shape=(len(records), 1), dtype=h5py.ref_dtype)
        for i, h in enumerate(handles):
            cell[i, 0] = h
        cell.attrs["MATLAB_class"] = np.bytes_("cell")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2015 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + bytes(8) + b"\x00\x02" + b"IM")

def gyro_subject(path, bpm, seconds=40):
    n = int(seconds * 50)
    ppg = (30000 + 2000 * pulse(seconds, 50, bpm)).astype(np.uint16)
    beats = np.arange(0.4, seconds, 60 / bpm)[:, None]
    scipy.io.savemat(path, {"sigPPG": np.vstack([ppg, ppg, ppg]), "sigAcc": np.full((3, n), 32768, np.uint16),
                            "sigGyro": np.full((3, n), 32768, np.uint16), "timeECG": beats,
                            "bpmECG": np.full_like(beats, bpm)})

def deepbeat_part(path, n, af_every, ids, compressed):
    rng = np.random.default_rng(len(ids))
    signal = np.stack([(pulse(25, 32, 60 + k, k) + 1) / 2 for k in range(n)])[:, :, None]
    rhythm = np.zeros((n, 2))
    rhythm[np.arange(n), (np.arange(n) % af_every == 0).astype(int)] = 1
    quality = np.eye(3)[rng.integers(0, 3, n)]
    params = np.empty((n, 3), dtype=object)
    for i in range(n):
        params[i] = [dt.datetime(2017, 1, 1) + dt.timedelta(minutes=i), "a", ids[i % len(ids)]]
    (np.savez_compressed if compressed else np.savez)(path, signal=signal, rhythm=rhythm, qa_label=quality,
                                                      parameters=params)


def wesad_pickle(path, seconds=60, bpm=70.0):
    """A WESAD ``S<k>.pkl``: wrist BVP at 64 Hz and 700-Hz labels, 10 s of each state."""
    label = np.repeat([0, 1, 1, 2, 3, 4], 10 * 700)[:seconds * 700]
    d = {"signal": {"wrist": {"BVP": (pulse(seconds, 64, bpm) * 40)[:, None]},
                    "chest": {"ECG": np.zeros((seconds * 700, 1))}},
         "label": label, "subject": path.stem}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(d, protocol=2))


def but_csvs(folder, ids, rates, quality=None):
    """BUT PPG 2.0.0's annotation and subject tables for records ``ids``."""
    quality = quality or [1] * len(ids)
    (folder / "quality-hr-ann.csv").write_text("\ufeffID,Quality,HR\n" + "".join(
        f"{rid},{q},{hr}\n" for rid, q, hr in zip(ids, quality, rates)), encoding="utf-8")
    (folder / "subject-info.csv").write_text(
        "\ufeffID,Gender,Age [years],Height [cm],Weight [kg],Ear/finger,Motion,Blood pressure [mmHg],"
        "Glycaemia [mmol/l],SpO2 [%]\n" + "".join(f"{rid},F,30,170,60,1,0,120/80,5.1,98\n" for rid in ids),
        encoding="utf-8")


def troika_recording(folder, nn, kind, seconds=30, bpm=100.0, reference="BPMtrace"):
    """``DATA_<nn>_TYPE<kind>.mat`` (6 x n at 125 Hz) and its reference, named ``..._BPMtrace.mat``
    or ``REF_<nn>_TYPE<kind>.mat``."""
    ppg = pulse(seconds, 125, bpm)
    scipy.io.savemat(folder / f"DATA_{nn}_TYPE{kind}.mat",
                     {"sig": np.vstack([np.zeros_like(ppg), ppg, ppg, *np.zeros((3, len(ppg)))])})
    name = f"DATA_{nn}_TYPE{kind}_BPMtrace.mat" if reference == "BPMtrace" else f"REF_{nn}_TYPE{kind}.mat"
    n = int((seconds - 8) // 2) + 1
    scipy.io.savemat(folder / name, {"BPM0": np.full((n, 1), bpm)})


def real_world_workbook(path, columns, seconds=6, cells=None):
    """A Real-World PPG workbook: a column per segment (samples, then the subject's number);
    ``cells`` overrides ``{(row, column): value}``."""
    import openpyxl
    book = openpyxl.Workbook()
    sheet = book.active
    for j in range(columns):
        subject = 1 + j % 2
        x = np.round(500 + 100 * pulse(seconds, 50, 60 + 20 * subject, j)).astype(int)
        for i, v in enumerate([*x.tolist(), subject], start=1):
            sheet.cell(row=i, column=j + 1, value=v)
    for (r, c), v in (cells or {}).items():
        sheet.cell(row=r, column=c, value=v)
    book.save(path)


# ---------------------------------------------------------------- pretraining sources' layouts

def edf_signal(x, fs, label, unit=""):
    """An edfio signal whose physical range holds ``x`` with a margin."""
    import edfio
    x = np.asarray(x, np.float64)
    lo, hi = float(np.min(x)), float(np.max(x))
    pad = max(1e-6, 0.05 * (hi - lo))
    return edfio.EdfSignal(x, sampling_frequency=fs, label=label, physical_dimension=unit,
                           physical_range=(lo - pad, hi + pad))


def write_edf(path, signals, annotations=None):
    """An EDF (EDF+C with ``annotations``) of ``signals``: ``(label, x, fs, unit)`` tuples, each
    ``x`` a whole number of seconds long."""
    import edfio
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = {"annotations": [edfio.EdfAnnotation(o, None, t) for o, t in annotations]} if annotations else {}
    edfio.Edf([edf_signal(x, fs, label, unit) for label, x, fs, unit in signals], **kw).write(path)
    return path


def at_rate(x, fs, target):
    """``x`` resampled from ``fs`` to ``target`` Hz (polyphase)."""
    from fractions import Fraction

    from scipy.signal import resample_poly
    r = Fraction(target / fs).limit_denominator(1000)
    return resample_poly(np.asarray(x, np.float64), r.numerator, r.denominator)


def write_pulsedb(path, ppg_windows, ecg_windows, subject="p000160"):
    """A PulseDB segment file as MATLAB 7.3 writes one: ``/Subj_Wins/<field>`` datasets of object
    references, shape (1, N), each to a (1, 1250) float64 dataset in ``#refs#``; ``SubjectID`` as
    a uint16 character array; a 512-byte MATLAB header."""
    import h5py
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        refs, wins = f.create_group("#refs#"), f.create_group("Subj_Wins")
        fields = {"PPG_Raw": ppg_windows, "ECG_Raw": ecg_windows,
                  "ABP_Raw": [np.full(1250, 90.0)] * len(ppg_windows),
                  "SubjectID": [np.array([ord(c) for c in subject], np.uint16)[:, None]] * len(ppg_windows)}
        for name, items in fields.items():
            handles = np.empty((1, len(items)), dtype=h5py.ref_dtype)
            for i, x in enumerate(items):
                arr = np.asarray(x)
                ds = refs.create_dataset(f"{name}_{i}", data=arr if arr.dtype == np.uint16 else arr[None, :])
                handles[0, i] = ds.ref
            wins.create_dataset(name, data=handles, dtype=h5py.ref_dtype)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2022 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + bytes(8) + b"\x00\x02" + b"IM")
    return path


# ---------------------------------------------------------------- a report's and a comparison's inputs

def fake_cohort(path, n=600, pos=(100, 99, 150), seed=0):
    """Three phecodes with exactly the given number of positive held-out stays."""
    from cohorts.phecodes import load_phecode_map
    rng = np.random.default_rng(seed)
    path.mkdir()
    codes = ["401.1", "427.21", "250.2"]
    ids = [f"{i}" for i in range(n)]
    split = ["heldout"] * (n - 50) + ["pretrain_train"] * 50
    pl.DataFrame({"stay_id": ids, "patient_id": ids, "age": rng.integers(20, 90, n).astype(np.int16),
                  "sex": rng.choice(["F", "M"], n), "has_ppg": True, "has_sync_ecg": False,
                  "split": split}).write_parquet(path / "stays.parquet")
    lab = {"stay_id": ids}
    held = n - 50
    for c, npos in zip(codes, pos):
        v = np.zeros(n, dtype=float)
        order = rng.permutation(held)
        v[order[:npos]] = 1  # exactly npos positive held-out stays
        v[order[npos:npos + 30]] = np.nan  # excluded stays (null labels)
        v[held:] = rng.random(50) < 0.2
        lab[c] = pl.Series(v).fill_nan(None).cast(pl.Int8)
    labels = pl.DataFrame(lab)
    labels.write_parquet(path / "labels.parquet")
    load_phecode_map().phecodes.filter(pl.col("phecode").is_in(codes)).select(
        "phecode", "description", "chapter", "sex").write_parquet(path / "phecodes.parquet")
    pred = {"stay_id": ids}
    for c in codes:
        y = labels[c].fill_null(0).to_numpy()
        pred[c] = (rng.random(n) * 0.6 + 0.3 * y).astype(np.float32)
    pl.DataFrame(pred).write_parquet(path / "predictions.parquet")
    return path, labels


def second_model(cohort, name="other", seed=9, drop=None):
    """A weaker model of the same stays, written beside the first."""
    pred = pl.read_parquet(cohort / "predictions.parquet")
    rng = np.random.default_rng(seed)
    cols = [c for c in pred.columns if c != "stay_id"]
    other = pred.with_columns(*[(pl.col(c) * 0.3 + pl.Series(rng.random(pred.height), dtype=pl.Float32)).alias(c)
                                for c in cols])
    if drop:
        other = other.drop(drop)
    path = cohort.parent / name / "predictions.parquet"
    path.parent.mkdir()
    other.write_parquet(path)
    return path
