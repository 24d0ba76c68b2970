"""DeepBeat (Torres-Soto & Ashley, npj Digital Medicine 2020; Synapse syn21985690): ``train.npz``,
``validate.npz`` and ``test.npz``, the authors' partition.

Each file holds ``signal`` (``n x 800 x 1``: 25 s of wrist PPG at 32 Hz, band-passed and scaled
to [0, 1]), ``rhythm`` (``n x 2`` one-hot: column 1 atrial fibrillation), ``qa_label``
(``n x 3`` one-hot signal quality: 0 poor, 1 acceptable, 2 excellent) and ``parameters``
(``n x 3`` objects: timestamp, stream, subject ID). ``validate.npz`` has 518,782 windows and
``test.npz`` 17,617, 536,399 in all; ``train.npz`` (2.8 million windows, augmented by its
authors) is not converted.

As the AnyPPG paper uses it: the official validation part is the training part (``split`` =
train) and the official test part the test part (``split`` = test). Written: ``windows.npy``
(float32 ``[n, 800]``, ``fs`` = 32), tasks ``af`` (binary) and ``quality`` (multi-class). Subject
IDs restart between the files, so a subject is ``<file>:<ID>``. The arrays are streamed from the
zip members in chunks (a 3 GB array is never held whole), and ``parameters`` is read without
running its pickle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir
from phewas.base.progress import progress

from .common import DatasetWriter, npz_members, npz_objects, npz_rows
from .validate import identifier, one_hot

FS, SAMPLES = 32.0, 800
PARTS = {"validate": "train", "test": "test"}  # official part -> the probe's split
KEYS = ("signal", "rhythm", "qa_label", "parameters")
CHUNK_ROWS = 16384  # rows read from a zip member at a time


def _check(path: Path) -> int:
    members = npz_members(path)
    missing = [k for k in KEYS if k not in members]
    if missing:
        raise InputError(path, f"no array {missing[0]!r}; expected {', '.join(KEYS)}, found {', '.join(members)}")
    if not members["signal"][0] or members["signal"][0][0] == 0:
        raise InputError(path, f"array 'signal' has shape {tuple(members['signal'][0])}; expected n x {SAMPLES} x 1 "
                         "windows, n at least 1")
    for key, (_, dtype) in members.items():
        if key in ("signal", "rhythm", "qa_label") and dtype.kind not in "biuf":
            raise InputError(path, f"array {key!r} holds {dtype} values; expected numbers")
    n = members["signal"][0][0]
    shapes = {"signal": (n, SAMPLES, 1), "rhythm": (n, 2), "qa_label": (n, 3), "parameters": (n, 3)}
    for key, expected in shapes.items():
        shape = tuple(members[key][0])
        if shape != expected and not (key == "signal" and shape == (n, SAMPLES)):
            raise InputError(path, f"array {key!r} has shape {shape}; expected {expected}")
    return n


def convert(source, out, *, overwrite: bool = False, strict: bool = False) -> dict:
    # both parts are the official split: a damaged one is an error, never skipped (strict or not)
    source = Path(source)
    files = {part: source / f"{part}.npz" for part in PARTS}
    for path in files.values():
        if not path.is_file():
            raise InputError(path, "not found (DeepBeat's folder holds train.npz, validate.npz and test.npz)")
    sizes = {part: _check(path) for part, path in files.items()}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, "deepbeat", {"af": "binary", "quality": "multiclass"}, fs=FS, strict=strict)
        writer.open_windows(sum(sizes.values()), SAMPLES)
        offset = 0
        for part, path in files.items():
            ids = [identifier(path, v, where=f"parameters row {i + 1}")
                   for i, v in enumerate(npz_objects(path, "parameters")[:, 2])]
            labels = {}
            for key, classes in (("rhythm", 2), ("qa_label", 3)):
                labels[key] = np.concatenate([one_hot(path, key, rows, classes=classes, first_row=first)
                                              for first, rows in npz_rows(path, key, CHUNK_ROWS)])
            for first, rows in progress(npz_rows(path, "signal", CHUNK_ROWS), total=-(-sizes[part] // CHUNK_ROWS),
                                        desc=f"deepbeat {part}", unit="chunk"):
                writer.put_windows(offset + first, rows.reshape(len(rows), SAMPLES))
            for i in range(sizes[part]):
                writer.add(window=offset + i, subject=f"{part}:{ids[i]}", split=PARTS[part],
                           af=int(labels["rhythm"][i]), quality=int(labels["qa_label"][i]))
            offset += sizes[part]
        return writer.close(source=source, fmt="deepbeat", counts={f"windows_{p}": n for p, n in sizes.items()})
