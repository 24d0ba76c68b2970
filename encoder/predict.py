"""``phewas predict``: a fine-tuned run's probabilities for every stay of a split."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl

from cohorts.splits import TRAIN_SPLITS
from cohorts.store import check_profiles, open_segments
from phewas.base.errors import OutputExistsError, PhewasError
from phewas.base.io import atomic_file, file_sha256

from .checkpoints import load_checkpoint
from .config import FinetuneConfig, PredictConfig
from .data import StayWindows
from .distributed import precision, setup_distributed
from .families import architecture_from_dict, build
from .heads import StayClassifier, predict_dataset
from .predictions import predictions_frame, write_predictions_manifest
from .runs import run_profile


def predict(cohort, run, config: PredictConfig | None = None, *, overwrite: bool = False) -> dict:
    """``phewas predict``: write ``RUN/predictions.parquet`` (``stay_id`` + one Float32 probability
    column per target phecode) for every stay of the split, from the run's best checkpoint and its
    own settings. Returns the predictions' manifest.

    A stay whose store holds no valid window gets each phecode's training prevalence (counted in
    the manifest), so that the file covers the whole split; the ``n_windows`` column (distinct
    windows behind each stay's scores, 0 for those) lets ``report`` leave them out. A run that has
    not finished (stopped with ``--stop-after-steps``, or killed) is refused unless
    ``allow_unfinished``, which the predictions' manifest then records.
    """
    cfg = config or PredictConfig()
    run, cohort = Path(run), Path(cohort)
    finished = (run / "manifest.json").exists()
    if (run / "config.json").exists() and not finished and not cfg.allow_unfinished:
        raise PhewasError(f"{run}: the run has not finished (no manifest.json: stopped with "
                          "--stop-after-steps, or killed); continue it with `phewas finetune --resume`, "
                          "or pass --allow-unfinished to predict from its best checkpoint so far")
    for name in ("config.json", "targets.json", "checkpoints/best.pt"):
        if not (run / name).exists():
            raise PhewasError(f"{run / name}: missing (is this a `phewas finetune` run that has "
                              "evaluated at least once?)")
    if (run / "predictions.parquet").exists() and not overwrite:
        raise OutputExistsError(f"{run / 'predictions.parquet'}: exists already (pass --force to replace it)")
    raw = json.loads((run / "config.json").read_text())
    raw["ppg"] = architecture_from_dict(raw["ppg"])
    trained = FinetuneConfig(**raw)
    targets = json.loads((run / "targets.json").read_text())
    d = setup_distributed(cfg.device)
    model = StayClassifier(build(trained.ppg), len(targets), trained.aggregation, trained.head_dropout)
    best = run / "checkpoints" / "best.pt"
    load_checkpoint(best, model=model, restore_random=False)  # a checkpoint of any number of GPUs
    model.to(d.device)
    store = open_segments(cohort)
    check_profiles({str(run): run_profile(run), str(store.path): store.profile})
    labels = pl.read_parquet(cohort / "labels.parquet")
    ds = StayWindows(store, labels, targets, [cfg.split], trained.segments_per_stay)
    probs = predict_dataset(model, ds, d.device, cfg.batch_size, trained.bf16, workers=min(4, os.cpu_count() or 1))
    train = StayWindows(store, labels, targets, TRAIN_SPLITS, 1)
    prior = (train.y * train.mask).sum(0) / np.maximum(train.mask.sum(0), 1)
    stays = pl.read_parquet(cohort / "stays.parquet").filter(pl.col("split") == cfg.split)["stay_id"].to_list()
    have = set(ds.stay_ids)
    missing = [s for s in stays if s not in have]
    ids = ds.stay_ids + missing
    probs = np.vstack([probs, np.tile(prior, (len(missing), 1))]).astype(np.float32)
    n_windows = np.concatenate([np.minimum(ds.count, trained.segments_per_stay), np.zeros(len(missing), np.int64)])
    df = predictions_frame(ids, n_windows, probs, targets).sort("stay_id")
    with atomic_file(run / "predictions.parquet") as tmp:
        df.write_parquet(tmp)
    return write_predictions_manifest(
        run, command="predict", cohort=cohort, split=cfg.split, stays=len(ids), phecodes=len(targets),
        stays_without_windows=len(missing), checkpoint={"path": str(best.resolve()), "sha256": file_sha256(best)},
        windows_per_stay=trained.segments_per_stay, run_finished=finished, allow_unfinished=cfg.allow_unfinished,
        device=str(d.device), precision=precision(d.device, trained.bf16), preprocess=run_profile(run))
