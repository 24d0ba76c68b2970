"""Converters from public PPG datasets' own layouts to the probe format (``phewas convert-dataset``).

* ``ppg-dalia`` (Reiss et al. 2019): ``S<k>/S<k>.pkl`` per subject, a Python 2 pickle of a dict
  with ``signal.wrist.BVP`` (64 Hz), ``label`` (the reference heart rate of each 8-s window,
  windows shifted by 2 s) and ``activity`` (4 Hz activity ids). Written: one WFDB record per
  subject and one example per labelled window (``start_s`` = 2 k, ``duration_s`` = 8), tasks
  ``heart_rate`` (regression) and ``activity`` (multi-class: the most frequent id over the
  window; unlabelled where that is the transient id 0). No official split (8:2 by subject).
  The pickles are read by an unpickler that accepts numpy arrays and plain containers only: a
  pickle can run code, and these files come from outside.
* ``but-ppg`` (BUT PPG, PhysioNet, Nemcova et al.): ``quality-hr-ann.csv`` (``ID``, ``Quality``,
  ``HR``) and ``subject-info.csv`` (``ID``, ``Age [years]``, ...; both may start with a byte-order
  mark), records ``<ID>/<ID>_PPG.hea/.dat`` (30 Hz, 10 s; the signal ``PPG_R`` where the header
  has several, as in version 2, else the first). The subject is the ID's first three digits.
  Tasks ``quality`` (binary), ``heart_rate`` and ``age`` (regression). The records are copied.
  The layout is read from PhysioNet's description and public loaders, not from the data itself
  (credential-free but not on these machines): a file that differs gives an error naming it.
"""

from __future__ import annotations

import csv
import io
import pickle
import shutil
from pathlib import Path

import numpy as np

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir, write_manifest

FORMATS = ("ppg-dalia", "but-ppg")
DALIA_FS, DALIA_WINDOW_S, DALIA_SHIFT_S, DALIA_ACTIVITY_FS = 64.0, 8.0, 2.0, 4.0


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and builtin containers; refuses anything else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode")}  # how protocol-2 pickles written by Python 3 carry bytes

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        import numpy._core.multiarray as multiarray  # numpy 2's home of numpy.core.multiarray
        if module == "_codecs":
            import codecs
            return codecs.encode
        if name in ("_reconstruct", "scalar"):
            return getattr(multiarray, name)
        return getattr(np, name)


def read_pickle_arrays(path: Path):
    try:
        return _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise InputError(path, f"not a PPG-DaLiA pickle of arrays ({err})") from None


def _write_labels(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _wrsamp(folder: Path, name: str, x: np.ndarray, fs: float, sig_name: str = "PPG") -> None:
    import wfdb
    x = np.nan_to_num(np.asarray(x, dtype=np.float64))
    span = float(np.max(np.abs(x))) or 1.0
    wfdb.wrsamp(name, fs=fs, units=["NU"], sig_name=[sig_name], p_signal=x[:, None], fmt=["16"],
                adc_gain=[30000.0 / span], baseline=[0], write_dir=str(folder))


def convert_ppg_dalia(source, out, *, overwrite: bool = False) -> dict:
    source = Path(source)
    files = sorted(source.glob("S*/S*.pkl"), key=lambda p: (len(p.stem), p.stem))
    if not files:
        raise InputError(source, "no S<k>/S<k>.pkl files (is this PPG-DaLiA's PPG_FieldStudy folder?)")
    rows = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "records").mkdir()
        for path in files:
            d = read_pickle_arrays(path)
            try:
                bvp = np.asarray(d["signal"]["wrist"]["BVP"], dtype=np.float64).reshape(-1)
                hr = np.asarray(d["label"], dtype=np.float64).reshape(-1)
                activity = np.asarray(d.get("activity", np.zeros(0)), dtype=np.float64).reshape(-1)
            except (KeyError, TypeError) as err:
                raise InputError(path, f"missing {err} (expected signal.wrist.BVP, label, activity)") from None
            subject = path.stem
            _wrsamp(tmp / "records", subject, bvp, DALIA_FS)
            for k, h in enumerate(hr):
                start = k * DALIA_SHIFT_S
                a, b = int(start * DALIA_ACTIVITY_FS), int((start + DALIA_WINDOW_S) * DALIA_ACTIVITY_FS)
                ids = activity[a:b].astype(int)
                mode = int(np.bincount(ids).argmax()) if len(ids) else 0
                act = mode if mode > 0 else ""  # mostly transient (id 0): unlabelled
                rows.append([f"records/{subject}", f"{start:g}", f"{DALIA_WINDOW_S:g}", subject,
                             f"{h:.3f}" if np.isfinite(h) else "", act])
        _write_labels(tmp / "labels.csv", ["record", "start_s", "duration_s", "subject", "heart_rate", "activity"],
                      rows)
        (tmp / "dataset.toml").write_text('name = "ppg-dalia"\nchannel = "PPG"\n[tasks.heart_rate]\nkind = '
                                          '"regression"\n[tasks.activity]\nkind = "multiclass"\n')
        manifest = write_manifest(tmp, command="convert-dataset", inputs={"source": str(source.resolve())},
                                  parameters={"format": "ppg-dalia"}, counts={"subjects": len(files),
                                                                              "examples": len(rows)})
    return manifest


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise InputError(path, "not found (is this BUT PPG's root folder?)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if rows and "ID" not in rows[0]:
        raise InputError(path, f"no 'ID' column; columns: {', '.join(rows[0])}")
    return rows


def convert_but_ppg(source, out, *, overwrite: bool = False) -> dict:
    import wfdb
    source = Path(source)
    quality = _read_csv(source / "quality-hr-ann.csv")
    info = {r["ID"].strip().zfill(6): r for r in _read_csv(source / "subject-info.csv")}
    for col in ("Quality", "HR"):
        if quality and col not in quality[0]:
            raise InputError(source / "quality-hr-ann.csv", f"no {col!r} column")
    rows, channel, missing = [], None, 0
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "records").mkdir()
        for q in quality:
            rid = q["ID"].strip().zfill(6)
            hea = source / rid / f"{rid}_PPG.hea"
            if not hea.is_file():
                missing += 1
                continue
            if channel is None:
                names = wfdb.rdheader(str(hea.with_suffix(""))).sig_name or []
                channel = "PPG_R" if "PPG_R" in names else None
            for f in (hea, hea.with_suffix(".dat")):
                shutil.copyfile(f, tmp / "records" / f.name)
            age = (info.get(rid, {}).get("Age [years]") or info.get(rid, {}).get("Age") or "").strip()
            rows.append([f"records/{rid}_PPG", rid[:3], q["Quality"].strip(), q["HR"].strip(), age])
        if not rows:
            raise InputError(source, f"none of the {len(quality)} records of quality-hr-ann.csv has "
                             "<ID>/<ID>_PPG.hea")
        _write_labels(tmp / "labels.csv", ["record", "subject", "quality", "heart_rate", "age"], rows)
        (tmp / "dataset.toml").write_text('name = "but-ppg"\n' + (f'channel = "{channel}"\n' if channel else "")
                                          + '[tasks.quality]\nkind = "binary"\n[tasks.heart_rate]\nkind = '
                                          '"regression"\n[tasks.age]\nkind = "regression"\n')
        manifest = write_manifest(tmp, command="convert-dataset", inputs={"source": str(source.resolve())},
                                  parameters={"format": "but-ppg"},
                                  counts={"examples": len(rows), "records_missing": missing})
    return manifest


def convert_dataset(fmt: str, source, out, *, overwrite: bool = False) -> dict:
    if fmt == "ppg-dalia":
        return convert_ppg_dalia(source, out, overwrite=overwrite)
    if fmt == "but-ppg":
        return convert_but_ppg(source, out, overwrite=overwrite)
    raise ValueError(f"format must be one of {FORMATS}")
