"""Real-World PPG (Siam et al., Mendeley Data doi:10.17632/yynb8t9x3d): biometric identification of
35 subjects from 6-s segments at 50 Hz, with an official train/test split (1,374 / 700 segments
in the AnyPPG paper).

**Layout not confirmed.** The only public loader found reads two Excel workbooks,
``train<k>.xlsx`` and ``test<k>.xlsx``, each column a segment: its samples from the top, and the
subject's number in the column's last filled cell. This converter reads that layout: any
``train*.xlsx`` and ``test*.xlsx`` under the folder (the ``openpyxl`` package reads them). A
workbook laid out otherwise is an error naming it and what was expected.

Written: ``windows.npy`` (float32, ``fs`` = 50; shorter segments are zero-padded to the longest,
with ``duration_s`` giving each one's own length), the official split, and task ``subject_id``
(multi-class). There is no ``subject`` column: the task is to tell subjects apart, so the probe's
cross-validation folds are by example, stratified by subject, not by subject.
"""

from __future__ import annotations

import numbers
from itertools import zip_longest
from pathlib import Path

import numpy as np

from phewas.base.errors import InputError
from phewas.base.io import atomic_dir

from .common import DatasetWriter

FS = 50.0


def read_workbook(path: Path) -> list[tuple[str, np.ndarray]]:
    """``(subject, samples)`` per column of the first sheet."""
    try:
        import openpyxl
    except ModuleNotFoundError:
        raise InputError(path, "reading Excel workbooks needs openpyxl (pip install 'phewas[datasets]')") from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable workbook is the same user error
        raise InputError(path, f"not a readable Excel workbook ({type(err).__name__})") from None
    out = []
    try:
        rows = list(book.active.iter_rows(values_only=True))  # read-only sheets stream rows only
        for j, column in enumerate(zip_longest(*rows), start=1):
            cells = [c for c in column if c is not None and c != ""]
            if not cells:
                continue
            if any(isinstance(c, (str, bytes)) or not isinstance(c, numbers.Real) for c in cells):
                raise InputError(path, f"column {j} holds text; expected samples and the subject's number "
                                 "in its last cell", column=j)  # "NaN" and "inf" as text included
            values = np.asarray(cells, dtype=np.float64)
            if len(values) < 2 or not np.isfinite(values[-1]) or values[-1] != int(values[-1]):
                raise InputError(path, f"column {j}'s last cell ({cells[-1]!r}) is not a subject number",
                                 column=j)
            out.append((str(int(values[-1])), values[:-1]))
    finally:
        book.close()
    if not out:
        raise InputError(path, "no segment: the first sheet is empty (expected a column per segment)")
    return out


def convert(source, out, *, overwrite: bool = False, strict: bool = False) -> dict:
    source = Path(source)
    parts = {"train": sorted(source.rglob("train*.xlsx")), "test": sorted(source.rglob("test*.xlsx"))}
    if not parts["train"] or not parts["test"]:
        raise InputError(source, "expected train*.xlsx and test*.xlsx workbooks (a column per segment, the "
                         "subject's number in its last cell)")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, "real-world-ppg", {"subject_id": "multiclass"}, fs=FS, strict=strict)
        segments = []
        for split, files in parts.items():
            for path in files:
                with writer.each_file(path):
                    segments += [(split, subject, x) for subject, x in read_workbook(path)]
        if not segments:
            writer.close(source=source, fmt="real-world-ppg")  # says why: every workbook skipped
        width = max(len(x) for _, _, x in segments)
        writer.open_windows(len(segments), width)
        for i, (split, subject, x) in enumerate(segments):
            writer.put_windows(i, x[None, :])
            # no `subject` column: the task is to tell subjects apart, so folds must not hold them out
            writer.add(window=i, duration_s=len(x) / FS, split=split, subject_id=subject)
        return writer.close(source=source, fmt="real-world-ppg",
                            notes={"layout": "unconfirmed: Excel workbooks, a column per segment"})
