"""Which stays a model trains on and which phecodes it targets: one rule for every model
(fine-tuned encoders and the pulse-feature baseline), without torch."""

from __future__ import annotations

import polars as pl

from cohorts.splits import TRAIN_SPLITS


def target_phecodes(store, labels: pl.DataFrame, k: int) -> list[str]:
    """Phecodes with at least ``k`` positive training stays (``TRAIN_SPLITS``, stays with windows)."""
    train = store.stays.filter(pl.col("split").is_in(TRAIN_SPLITS) & (pl.col("n_ppg_windows") > 0))["stay_id"]
    lab = labels.filter(pl.col("stay_id").is_in(train.implode()))
    counts = lab.select(pl.exclude("stay_id").eq(1).sum()).row(0, named=True)
    return [p for p, n in counts.items() if n >= k]
