"""The column map: where MC-MED's tables keep each field, adjustable without editing code.

A user whose export names columns differently passes ``--columns FILE`` (TOML). Only the keys
given override the defaults below, which follow MC-MED's data dictionary
(``../shared/mcmed-format.md``). Example::

    [visits]
    age = "Age_at_visit"

    [pmh.code_types]
    icd9 = ["Dx9", "ICD-9-CM"]
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from phewas.base.errors import InputError
from phewas.base.io import read_toml
from phewas.base.settings import setting

from .tables import code_type_lookup


@dataclass(frozen=True)
class ColumnMap:
    """``build-cohort``'s column map: a flag, and a key of ``run-all``'s ``[build_cohort]`` table
    (a path relative to the config file)."""

    columns: Path | None = setting(None, "column map (TOML) for other column names")


DEFAULT_COLUMNS: dict = {
    "files": {"visits": "visits.csv", "pmh": "pmh.csv", "waveforms": "waveforms"},
    "visits": {
        "patient_id": "MRN",
        "stay_id": "CSN",
        "age": "Age",
        "sex": "Gender",
        "arrival_time": "Arrival_time",
        "dx_icd9": "Dx_ICD9",
        "dx_icd10": "Dx_ICD10",
    },
    "pmh": {
        "patient_id": "MRN",
        "noted_date": "Noted_date",
        "code_type": "CodeType",
        "code": "Code",
        # Dx10 is confirmed for ICD-10; the ICD-9 value is not, so the common spellings are
        # accepted (matched case-insensitively).
        "code_types": {"icd9": ["Dx9", "Dx09", "ICD9", "ICD-9", "ICD9CM", "ICD-9-CM", "9"],
                       "icd10": ["Dx10", "ICD10", "ICD-10", "ICD10CM", "ICD-10-CM", "10"]},
    },
    "sex_values": {"F": ["F", "Female"], "M": ["M", "Male"], "U": ["U", "Unknown", "X"]},
    "waveforms": {"ppg": "Pleth", "ecg": "II"},
}


def _merge(base: dict, override: dict, path: str, source) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}.{key}" if path else key
        if key not in base:
            raise InputError(source, f"unknown column-map key {where!r}; known keys: "
                             f"{', '.join(sorted(base))}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InputError(source, f"column-map key {where!r} must be a table")
            out[key] = _merge(base[key], value, where, source)
        elif isinstance(base[key], list):
            if isinstance(value, str):
                value = [value]
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise InputError(source, f"column-map key {where!r} must be a list of strings")
            out[key] = value
        else:
            if not isinstance(value, str):
                raise InputError(source, f"column-map key {where!r} must be a string")
            out[key] = value
    return out


def load_columns(path=None) -> dict:
    """Return the column map: the defaults, overridden by the TOML file at ``path`` if given."""
    if path is None:
        return copy.deepcopy(DEFAULT_COLUMNS)
    columns = _merge(DEFAULT_COLUMNS, read_toml(path, "column map"), "", Path(path))
    code_type_lookup(columns["pmh"]["code_types"], Path(path))  # one value under both systems
    return columns
