"""What the converters share: a writer of dataset folders in the probe format, and readers of
the files public datasets come in (pickles, ``.npz``, MATLAB files) that never run their code and
never hold more than they must.

The probe format is :mod:`cohorts.probe_data`'s: ``dataset.toml``, ``labels.csv`` and the
signals, as WFDB records (``records/``) or ``windows.npy``.
"""

from __future__ import annotations

import csv
import io
import pickle
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from phewas.base.errors import InputError
from phewas.base.io import write_manifest

from .validate import label

OFFICIAL = {"train", "test"}


class DatasetWriter:
    """Writes a dataset folder in the probe format into ``folder`` (an atomic output's temporary).

    ``tasks``: task name -> kind. Rows name a WFDB record (:meth:`record`) or a row of
    ``windows.npy`` (:meth:`open_windows`); :meth:`close` writes ``labels.csv``, ``dataset.toml``
    and ``manifest.json``.
    """

    def __init__(self, folder: Path, name: str, tasks: dict[str, str], *, fs: float | None = None,
                 channel: str | None = None, strict: bool = False):
        self.folder, self.name, self.tasks, self.fs, self.channel = Path(folder), name, tasks, fs, channel
        self.strict = strict
        self.rows: list[dict] = []
        self.skipped: list[dict] = []  # files not converted, and why
        self.non_finite: dict[str, int] = {}  # record or window row -> samples that are NaN or infinite
        self.non_finite_labels = dict.fromkeys(tasks, 0)
        self._records: list[str] = []
        self._windows = None

    def record(self, name: str, x: np.ndarray, fs: float, sig_name: str = "PPG") -> str:
        """Write one signal as a WFDB record under ``records/``; returns its path for ``labels.csv``.
        Non-finite samples are written as WFDB's invalid value (read back as NaN) and counted."""
        import wfdb
        (self.folder / "records").mkdir(exist_ok=True)
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        finite = np.isfinite(x)
        if not finite.all():
            self.non_finite[f"records/{name}"] = int((~finite).sum())
            x = np.where(finite, x, np.nan)
        span = float(np.max(np.abs(x[finite]))) if finite.any() else 0.0
        wfdb.wrsamp(name, fs=fs, units=["NU"], sig_name=[sig_name], p_signal=x[:, None], fmt=["16"],
                    adc_gain=[30000.0 / (span or 1.0)], baseline=[0], write_dir=str(self.folder / "records"))
        self._records.append(name)
        return f"records/{name}"

    def open_windows(self, n: int, width: int) -> np.ndarray:
        """``windows.npy`` (float32 ``[n, width]`` at the dataset's ``fs``), memory-mapped for writing;
        fill it with :meth:`put_windows`."""
        self._windows = np.lib.format.open_memmap(self.folder / "windows.npy", mode="w+", dtype=np.float32,
                                                  shape=(n, width))
        return self._windows

    def put_windows(self, first: int, rows: np.ndarray) -> None:
        """Rows ``first, first + 1, ...`` of ``windows.npy``; non-finite samples kept as NaN and counted."""
        rows = np.asarray(rows, dtype=np.float32)
        bad = ~np.isfinite(rows)
        if bad.any():
            per = bad.reshape(len(rows), -1).sum(axis=1)
            for i in np.flatnonzero(per):
                self.non_finite[f"window {first + int(i)}"] = int(per[i])
            rows = np.where(bad, np.float32("nan"), rows)
        self._windows[first:first + len(rows), :rows.shape[1]] = rows

    def add(self, **row) -> None:
        """One example: ``record`` (with optional ``start_s``, ``duration_s``) or ``window``;
        ``subject``, ``split``; a value (or None) per task. A task value that is NaN or infinite is
        unlabelled, and counted."""
        for task in self.tasks:
            if task in row:
                value = label(row[task])
                if value is None and row[task] is not None:
                    self.non_finite_labels[task] += 1
                row[task] = value
        self.rows.append(row)

    @contextmanager
    def each_file(self, path: Path):
        """Converts one file of several: an :class:`InputError` inside skips the file (recorded with
        its reason in the manifest) unless ``strict``, where it ends the conversion."""
        rows, records, labels = len(self.rows), len(self._records), dict(self.non_finite_labels)
        try:
            yield
        except InputError as err:
            if self.strict:
                raise
            del self.rows[rows:]
            for name in self._records[records:]:  # nothing of a skipped file stays behind
                for ext in (".hea", ".dat"):
                    (self.folder / "records" / f"{name}{ext}").unlink(missing_ok=True)
                self.non_finite.pop(f"records/{name}", None)
            del self._records[records:]
            self.non_finite_labels = labels
            self.skipped.append({"file": str(path), "reason": str(err)})

    def close(self, *, source: Path, fmt: str, counts: dict | None = None, notes: dict | None = None) -> dict:
        """Write ``labels.csv``, ``dataset.toml`` and ``manifest.json``; returns the manifest."""
        if self._windows is not None:
            self._windows.flush()
        if not self.rows:
            if self.skipped:  # every file damaged: the first one's reason
                raise InputError(source, f"no file could be converted ({len(self.skipped)} skipped); the first: "
                                 f"{self.skipped[0]['reason']}")
            raise InputError(source, f"no example found to convert ({fmt})")
        empty = [t for t in self.tasks if all(r.get(t) is None for r in self.rows)]
        if empty:  # a task the source holds no label of (blood pressure in BUT PPG 1.0.0, say)
            notes = {**(notes or {}), "tasks_without_labels": empty}
            self.tasks = {t: k for t, k in self.tasks.items() if t not in empty}
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        order = [k for k in ("record", "window", "start_s", "duration_s", "subject", "split") if k in keys]
        header = order + list(self.tasks)
        with open(self.folder / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for r in self.rows:
                w.writerow(["" if r.get(k) is None else _text(r[k]) for k in header])
        toml = [f'name = "{self.name}"']
        if self.fs is not None:
            toml.append(f"fs = {self.fs:g}")
        if self.channel is not None:
            toml.append(f'channel = "{self.channel}"')
        toml += [f'[tasks.{t}]\nkind = "{k}"' for t, k in self.tasks.items()]
        (self.folder / "dataset.toml").write_text("\n".join(toml) + "\n")
        splits = {s: sum(r.get("split") == s for r in self.rows) for s in OFFICIAL}
        return write_manifest(
            self.folder, command="convert-dataset", inputs={"source": str(Path(source).resolve())},
            parameters={"format": fmt, "strict": self.strict},
            counts={"examples": len(self.rows),
                    "subjects": len({r.get("subject") for r in self.rows if r.get("subject") is not None}),
                    **({"official_split": splits} if any(splits.values()) else {}),
                    **{f"labelled_{t}": sum(r.get(t) is not None for r in self.rows) for t in self.tasks},
                    **{f"non_finite_labels_{t}": n for t, n in self.non_finite_labels.items() if n},
                    "files_skipped": len(self.skipped),
                    "non_finite_samples": sum(self.non_finite.values()),
                    **(counts or {})},
            skipped=self.skipped, non_finite_samples=self.non_finite,
            **({"notes": notes} if notes else {}))


def _text(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and builtin containers; refuses anything else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"),
               ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 carry bytes
               ("__builtin__", "bytes"), ("builtins", "bytes")}  # ... and empty bytes (an empty array's data)

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        import numpy._core.multiarray as multiarray  # numpy 2's home of numpy.core.multiarray
        if module == "_codecs":
            import codecs
            return codecs.encode
        if name == "bytes":
            return _bytes
        if name in ("_reconstruct", "scalar"):
            return getattr(multiarray, name)
        return getattr(np, name)


def _bytes(*args):
    """``bytes()`` and ``bytes(b"...")`` only: ``bytes(10 ** 12)`` would allocate a terabyte."""
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    raise pickle.UnpicklingError("refused to call bytes() with other arguments")


def read_pickle_arrays(path: Path, what: str = "pickle of arrays"):
    """A pickle of numpy arrays and plain containers (Python 2 pickles included), read from the
    file without holding its bytes twice; any other object is refused: a pickle can run code."""
    try:
        with open(path, "rb") as f:
            return _ArraysOnly(f, encoding="latin1").load()
    except FileNotFoundError:
        raise InputError(path, "not found") from None
    except IsADirectoryError:
        raise InputError(path, f"is a folder; expected a {what}") from None
    except Exception as err:  # noqa: BLE001 - whatever a damaged pickle raises is the same user error
        raise InputError(path, f"not a {what} ({type(err).__name__}: {err})") from None


class _Stub:
    """Stands for an object a pickle names (a pandas Timestamp, say): nothing is imported or run."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class _Inert(_ArraysOnly):
    """Reads plain values out of an object array's pickle: numpy as :class:`_ArraysOnly`, every
    other class replaced by :class:`_Stub`, so that no code of the file runs."""

    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except pickle.UnpicklingError:
            return _Stub


def npz_members(path: Path) -> dict[str, tuple]:
    """``name -> (shape, dtype)`` of each array of an ``.npz`` file, from the headers alone."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.filename.endswith(".npy"):
                    with z.open(info) as f:
                        shape, _, dtype = _npy_header(f)
                    out[info.filename[:-4]] = (shape, dtype)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise InputError(path, f"not a readable .npz file ({err})") from None
    return out


def _npy_header(f):
    version = np.lib.format.read_magic(f)
    reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in reader:
        raise ValueError(f"unknown .npy version {version}")
    shape, fortran, dtype = reader[version](f)
    return shape, fortran, dtype


def npz_rows(path: Path, name: str, chunk: int = 16384):
    """Yield ``(first_row, rows)`` of array ``name`` of an ``.npz`` file in chunks, streamed from the
    zip member (compressed or not): a 3 GB array is never held whole. Object arrays are refused."""
    try:
        yield from _npz_rows(path, name, chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
        raise InputError(path, f"array {name!r} cannot be read: truncated or damaged ({type(err).__name__})") from None


def _npz_rows(path: Path, name: str, chunk: int):
    with zipfile.ZipFile(path) as z, z.open(f"{name}.npy") as f:
        shape, fortran, dtype = _npy_header(f)
        if dtype.hasobject:
            raise InputError(path, f"array {name!r} holds Python objects; read it with npz_objects")
        if fortran and len(shape) > 1:
            raise InputError(path, f"array {name!r} is stored in Fortran order; expected C order")
        per_row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        for first in range(0, shape[0] if shape else 0, chunk):
            n = min(chunk, shape[0] - first)
            data = f.read(n * per_row)
            if len(data) != n * per_row:
                raise InputError(path, f"array {name!r} is truncated at row {first}")
            yield first, np.frombuffer(data, dtype=dtype).reshape((n, *shape[1:]))


def npz_objects(path: Path, name: str) -> np.ndarray:
    """An object array of an ``.npz`` file (strings, timestamps) read without running its pickle:
    classes it names become inert stubs."""
    try:
        with zipfile.ZipFile(path) as z, z.open(f"{name}.npy") as f:
            _npy_header(f)
            data = f.read()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
        raise InputError(path, f"array {name!r} cannot be read: truncated or damaged ({type(err).__name__})") from None
    try:
        return np.asarray(_Inert(io.BytesIO(data), encoding="latin1").load())
    except Exception as err:  # noqa: BLE001 - whatever a damaged pickle raises is the same user error
        raise InputError(path, f"array {name!r} is not a readable object array ({type(err).__name__})") from None


def load_mat5(path: Path, required: tuple[str, ...]) -> dict:
    """A MATLAB 5 file's variables (scipy); a missing ``required`` variable is an error naming the
    file, what was expected and what is there."""
    import scipy.io
    try:
        variables = scipy.io.loadmat(path)
    except FileNotFoundError:
        raise InputError(path, "not found") from None
    except NotImplementedError:
        raise InputError(path, "is a MATLAB 7.3 (HDF5) file; expected MATLAB 5 (as published)") from None
    except Exception as err:  # noqa: BLE001 - scipy raises many kinds on a damaged file (IndexError on a short one)
        raise InputError(path, f"not a readable MATLAB file ({type(err).__name__}: {err})") from None
    missing = [k for k in required if k not in variables]
    if missing:
        found = [k for k in variables if not k.startswith("__")]
        raise InputError(path, f"no variable {missing[0]!r} (expected {', '.join(required)}); found "
                         f"{', '.join(found) or 'none'}")
    return variables


def mat_cells(path: Path, names: tuple[str, ...]):
    """``(name, cells)``: the first of ``names`` that the MATLAB file holds, and its cells one by one
    in MATLAB's orientation (a version 7.3 file is read cell by cell, never whole)."""
    import scipy.io
    try:
        variables = scipy.io.loadmat(path, variable_names=names)
    except NotImplementedError:  # a v7.3 (HDF5) file, as MATLAB writes it
        return _mat73_cells(path, names)
    except FileNotFoundError:
        raise InputError(path, "not found") from None
    except Exception as err:  # noqa: BLE001 - scipy raises many kinds on a damaged file
        if _is_hdf5(path):  # HDF5 without MATLAB's header (written by another tool)
            return _mat73_cells(path, names)
        raise InputError(path, f"not a readable MATLAB file ({type(err).__name__}: {err})") from None
    for name in names:
        if name in variables:
            return name, (np.asarray(c) for c in np.asarray(variables[name], dtype=object).reshape(-1, order="F"))
    raise InputError(path, f"no variable {' or '.join(map(repr, names))}")


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(1024)
    return any(head[k:k + 8] == b"\x89HDF\r\n\x1a\n" for k in (0, 512))


def _mat73_cells(path: Path, names):
    try:
        import h5py
    except ModuleNotFoundError:
        raise InputError(path, "is a MATLAB 7.3 (HDF5) file: reading it needs h5py "
                         "(pip install 'phewas[datasets]')") from None
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(path, f"not a readable MATLAB 7.3 (HDF5) file: truncated or damaged ({err})") from None
    name = next((n for n in names if n in f), None)
    if name is None:
        found = [k for k in f if not k.startswith("#")]
        f.close()
        raise InputError(path, f"no variable {' or '.join(map(repr, names))}; found {', '.join(found) or 'none'}")
    node = f[name]
    if node.dtype != h5py.ref_dtype:
        f.close()
        raise InputError(path, f"variable {name!r} is not a cell array")

    def cells():
        with f:
            try:
                refs = np.asarray(node).reshape(-1, order="F")
            except OSError as err:
                raise InputError(path, f"variable {name!r} cannot be read: truncated or damaged ({err})") from None
            for i, ref in enumerate(refs):
                try:
                    cell = np.asarray(f[ref])
                except (OSError, ValueError, KeyError) as err:
                    raise InputError(path, f"cell {i + 1} of {name!r} cannot be read: truncated or damaged "
                                     f"({type(err).__name__})") from None
                yield cell.T  # HDF5 holds MATLAB's arrays transposed
    return name, cells()


def find_files(source: Path, pattern: str, what: str) -> list[Path]:
    """Files under ``source`` matching ``pattern``, in natural order; none is an error naming what
    was expected."""
    source = Path(source)
    if not source.is_dir():
        raise InputError(source, "not a folder (--source names the dataset's folder as distributed)")
    files = sorted(source.glob(pattern), key=lambda p: [int(t) if t.isdigit() else t for t in _tokens(p.name)])
    if not files:
        raise InputError(source, f"no {pattern} files: {what}")
    return files


def _tokens(name: str) -> list[str]:
    import re
    return re.findall(r"\d+|\D+", name)
