"""What converters read, checked before it is used: every value a converter takes from a public
dataset's file passes through one of these, so a damaged file of any format ends in one line
naming the file, the variable or column, and what was expected (:class:`InputError`).

* :func:`numbers`: an array of numbers (not text, not objects, not empty, of the expected shape);
* :func:`signal`: a 1-D signal of a minimum length; its non-finite samples are kept (as NaN) and
  counted by the writer, and the preprocessing profile's rule decides their windows;
* :func:`one_hot`: class indices from one-hot rows, a row that is not one-hot an error naming it;
* :func:`label`: a task's value, ``None`` (unlabelled) when missing or not finite;
* :func:`identifier`: a subject identifier, which must be a plain value.
"""

from __future__ import annotations

import numbers as _numbers
from pathlib import Path

import numpy as np

from phewas.base.errors import InputError


def numbers(path: Path, name: str, value, *, what: str, ndim: int | tuple[int, ...] | None = None,
            min_size: int = 1) -> np.ndarray:
    """``value`` as a float64 array, or an error naming ``path`` and ``name`` that says ``what`` was
    expected: text or objects where numbers are expected, complex numbers, fewer than
    ``min_size`` values, or a number of dimensions other than ``ndim``."""
    arr = value if isinstance(value, np.ndarray) else None
    if arr is None:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError):  # ragged nested lists
            raise InputError(path, f"{name} is not an array of numbers; expected {what}") from None
    if arr.dtype.kind in "USa":
        raise InputError(path, f"{name} holds text where numbers are expected ({what})")
    if arr.dtype.kind == "c":
        raise InputError(path, f"{name} holds complex numbers; expected {what}")
    if arr.dtype.kind in "OV":
        if arr.dtype.kind == "O" and any(isinstance(v, (str, bytes)) for v in arr.reshape(-1)):
            raise InputError(path, f"{name} holds text where numbers are expected ({what})")
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError):
            raise InputError(path, f"{name} holds text or objects where numbers are expected ({what})") from None
    else:
        arr = arr.astype(np.float64, copy=False)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if dims is not None and arr.ndim not in dims:
        raise InputError(path, f"{name} has shape {arr.shape}; expected {what}")
    if arr.size < min_size:
        raise InputError(path, f"{name} is empty (shape {arr.shape}); expected {what}" if arr.size == 0 else
                         f"{name} holds {arr.size} values; expected {what}")
    return arr


def signal(path: Path, name: str, value, *, fs: float, min_seconds: float, what: str) -> np.ndarray:
    """A 1-D signal (an ``(n, 1)`` column or ``(1, n)`` row is flattened) of at least
    ``min_seconds`` at ``fs``, as float64; infinities become NaN (the writer counts them)."""
    x = numbers(path, name, value, what=what)
    if x.ndim > 1 and sum(s > 1 for s in x.shape) > 1:
        raise InputError(path, f"{name} has shape {x.shape}; expected {what}")
    x = x.reshape(-1)
    need = int(np.ceil(min_seconds * fs))
    if len(x) < need:
        raise InputError(path, f"{name} holds {len(x)} samples ({len(x) / fs:.1f} s at {fs:g} Hz); expected at least "
                         f"{need} ({what})")
    return np.where(np.isinf(x), np.nan, x)


def one_hot(path: Path, name: str, rows, *, classes: int, first_row: int = 0) -> np.ndarray:
    """The class index of each one-hot row of ``rows`` (``[n, classes]``); a row that is not exactly
    one 1 among 0s (NaN, all zero, two ones) is an error naming the row (counted from 1)."""
    x = numbers(path, name, rows, what=f"rows of {classes} one-hot columns", ndim=2, min_size=0)
    if x.shape[1] != classes:
        raise InputError(path, f"{name} has {x.shape[1]} columns; expected {classes} (one-hot)")
    ok = np.isin(x, (0.0, 1.0)).all(axis=1) & (x.sum(axis=1) == 1)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise InputError(path, f"{name} row {first_row + i + 1} is {x[i].tolist()}; expected one 1 among "
                         f"{classes} columns (one-hot)")
    return x.argmax(axis=1)


def label(value) -> float | int | str | None:
    """A task's value as written to ``labels.csv``: ``None`` (unlabelled) for a missing value, NaN
    or an infinity; numbers as Python numbers."""
    if value is None:
        return None
    if isinstance(value, (np.generic, _numbers.Number)) and not isinstance(value, (bool, np.bool_)):
        v = value.item() if isinstance(value, np.generic) else value
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v
    return value


def identifier(path: Path, value, *, where: str) -> str:
    """A subject identifier as text: a string, bytes or an integral number; anything else (an
    object of the file, a float with a fraction, NaN) is an error naming ``where``."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("latin1")
    if isinstance(value, bool):
        raise InputError(path, f"subject of {where} is a boolean; expected a plain identifier")
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and np.isfinite(value) and value == int(value):
        return str(int(value))
    kind = type(value).__name__ if not isinstance(value, str) else "empty text"
    raise InputError(path, f"subject of {where} is {'a ' if kind != 'empty text' else ''}{kind}; expected a plain "
                     "identifier (text or a whole number)")
