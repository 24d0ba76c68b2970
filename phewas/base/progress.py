"""Progress bars that the CLI's ``--quiet`` turns off everywhere."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

_QUIET = bool(os.environ.get("PHEWAS_QUIET"))


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    """Whether progress bars are off."""
    return _QUIET


def progress(iterable=None, **kwargs):
    """``tqdm`` that respects ``--quiet`` (and ``PHEWAS_QUIET=1``)."""
    kwargs.setdefault("disable", _QUIET)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    if not sys.stderr.isatty():  # logs, CI: fewer redraws
        kwargs.setdefault("mininterval", 5.0)
    return tqdm(iterable, **kwargs)
