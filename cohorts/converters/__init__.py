"""Converters from public PPG datasets, read as their publishers ship them, to the probe format
(``phewas convert-dataset``). One module per dataset; each module's description gives the
layout it reads, what it writes and what could not be confirmed. ``docs/probe-datasets.md``
lists them with the AnyPPG paper's tasks."""

from __future__ import annotations

from importlib import import_module

from .common import read_pickle_arrays

# --format -> the module that reads it
MODULES = {"ppg-dalia": "ppg_dalia", "but-ppg": "but_ppg", "uci-bp": "uci_bp", "gyro-acc-ppg": "gyro_acc_ppg",
           "deepbeat": "deepbeat", "wesad": "wesad", "real-world-ppg": "real_world_ppg", "troika": "troika"}
FORMATS = tuple(MODULES)

__all__ = ["FORMATS", "convert_dataset", "read_pickle_arrays"]


def convert_dataset(fmt: str, source, out, *, overwrite: bool = False, strict: bool = False) -> dict:
    """``phewas convert-dataset``: read ``source`` in format ``fmt``, write the dataset folder ``out``;
    returns its manifest. A damaged file among several is skipped and listed in the manifest
    (``skipped``), or, with ``strict``, ends the conversion with its error."""
    if fmt not in MODULES:
        raise ValueError(f"format must be one of {FORMATS}")
    return import_module(f"{__name__}.{MODULES[fmt]}").convert(source, out, overwrite=overwrite, strict=strict)
