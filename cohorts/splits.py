"""Patient-level splits: the held-out population never shares a patient with pretraining."""

from __future__ import annotations

import numpy as np
import polars as pl

from phewas.base.errors import PhewasError

PRETRAIN_SPLITS = ("pretrain_train", "pretrain_val", "pretrain_test")
SPLITS = (*PRETRAIN_SPLITS, "heldout", "excluded")
# the stays every model trains on: the paper fine-tunes on every subject of the pretraining
# cohort (the test split served pretraining's retrieval test); the validation split selects and
# stops early
TRAIN_SPLITS = ("pretrain_train", "pretrain_test")
VAL_SPLIT = "pretrain_val"


class LeakageError(PhewasError):
    """A patient appears on both sides of a split."""


def assign_splits(stays: pl.DataFrame, seed: int, fractions=(0.8, 0.1, 0.1)) -> pl.DataFrame:
    """Add a ``split`` column to ``stays`` (needs ``patient_id``, ``has_ppg``, ``has_sync_ecg``).

    Patients with synchronised PPG-ECG in any visit form the pretraining cohort, split by
    patient in ``fractions`` with ``seed``; every other patient with PPG is held out; visits
    without PPG are ``excluded``. The permutation is over sorted patient ids, so the result
    does not depend on row order.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    per_patient = stays.group_by("patient_id").agg(
        pl.col("has_sync_ecg").any().alias("sync"), pl.col("has_ppg").any().alias("ppg"))
    pre = np.sort(per_patient.filter(pl.col("sync"))["patient_id"].to_numpy().astype(str))
    rng = np.random.default_rng(seed)
    pre = pre[rng.permutation(len(pre))]
    n_train = int(round(fractions[0] * len(pre)))
    n_val = int(round(fractions[1] * len(pre)))
    names = np.array(PRETRAIN_SPLITS)[np.repeat([0, 1, 2], [n_train, n_val, len(pre) - n_train - n_val])]
    patient_split = pl.DataFrame({"patient_id": pre, "patient_split": names})
    held = per_patient.filter(~pl.col("sync") & pl.col("ppg")).select(
        "patient_id", pl.lit("heldout").alias("patient_split"))
    patient_split = pl.concat([patient_split, held])
    out = stays.join(patient_split, on="patient_id", how="left").with_columns(
        pl.when(pl.col("has_ppg")).then(pl.col("patient_split")).otherwise(pl.lit("excluded"))
        .alias("split")).drop("patient_split")
    check_disjoint(out)
    return out


def shared_patients(stays: pl.DataFrame) -> int:
    """Number of patients with stays in more than one of the non-excluded splits."""
    used = stays.filter(pl.col("split") != "excluded")
    return int(used.group_by("patient_id").agg(pl.col("split").n_unique().alias("n"))
               .filter(pl.col("n") > 1).height)


def check_disjoint(stays: pl.DataFrame) -> None:
    """Raise :class:`LeakageError` if any patient straddles splits."""
    n = shared_patients(stays)
    if n:
        raise LeakageError(f"{n} patients have stays in more than one split; refusing to write")
