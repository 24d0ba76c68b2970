"""``phewas finetune`` and ``phewas predict``: the whole encoder fine-tuned end to end as one
multi-label classifier over every phecode, a stay (its PPG windows) being one example.

Train on ``pretrain_train`` and ``pretrain_test`` (the paper fine-tunes on every subject of the
pretraining cohort; the test split served pretraining's retrieval test), select and stop early on
the macro AUC over phecodes on ``pretrain_val``; the held-out population is never read while
training (asserted per batch).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from cohorts.segments import open_segments
from phewas.errors import InputError, OutputExistsError, PhewasError, check_settings
from phewas.io import file_sha256, versions, write_json, write_manifest
from phewas.progress import progress

from .checkpoints import load_anyppg, load_strict, read_state_dict
from .data import StayWindows, identity_collate
from .net1d import Net1D, Net1DConfig, anyppg_config
from .pretrain import demo_ppg
from .training import (MetricsLog, ResumableBatches, TrainConfig, autocast, check_batches, from_preset, launch,
                       load_checkpoint, param_groups, save_checkpoint, setup_distributed, unwrap, warmup_cosine)

log = logging.getLogger(__name__)
AGGREGATIONS = ("mean_logits", "mean_embedding", "attention")
TRAIN_SPLITS = ("pretrain_train", "pretrain_test")


@dataclass
class FinetuneConfig(TrainConfig):
    """Every field is a ``phewas finetune`` flag; presets fill them, flags override."""

    ppg: Net1DConfig = field(default_factory=anyppg_config)
    init: str | None = None
    segments_per_stay: int = 20
    min_train_positives: int = 20
    aggregation: str = "mean_logits"
    pos_weight: bool = False
    pos_weight_max: float = 50.0
    head_dropout: float = 0.2
    batch_size: int = 32  # stays, global
    epochs: int = 10
    lr: float = 1e-3  # head
    encoder_lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    evals_per_epoch: int = 1
    patience: int = 3  # evaluations without improvement before stopping

    def __post_init__(self):
        super().__post_init__()
        check_settings(
            (self.aggregation in AGGREGATIONS, "--aggregation", f"one of {AGGREGATIONS}", self.aggregation),
            (self.segments_per_stay >= 1, "--segments-per-stay", "at least 1", self.segments_per_stay),
            (self.min_train_positives >= 1, "--min-train-positives", "at least 1", self.min_train_positives),
            (self.epochs >= 1, "--epochs", "at least 1", self.epochs),
            (self.encoder_lr > 0, "--encoder-lr", "more than 0", self.encoder_lr),
            (self.patience >= 1, "--patience", "at least 1", self.patience),
            (self.evals_per_epoch >= 1, "evals_per_epoch", "at least 1", self.evals_per_epoch),
            (0 <= self.head_dropout < 1, "head_dropout", "between 0 and 1", self.head_dropout),
            (self.pos_weight_max >= 1, "pos_weight_max", "at least 1", self.pos_weight_max),
        )


PRESETS = {
    "study": {},
    "demo": {"ppg": demo_ppg(), "segments_per_stay": 10, "min_train_positives": 10, "batch_size": 16,
             "epochs": 8, "lr": 3e-3, "encoder_lr": 1e-3, "warmup_steps": 20, "workers": 0,
             "evals_per_epoch": 1, "patience": 4},
}


def make_config(preset: str = "study", **overrides) -> FinetuneConfig:
    """A preset with overrides (``None`` values are ignored)."""
    return from_preset(FinetuneConfig, PRESETS, preset, overrides)


class StayClassifier(nn.Module):
    """Encoder applied to each window; the stay's logits aggregate its windows.

    ``mean_logits`` averages per-window logits; ``mean_embedding`` averages embeddings then
    classifies; ``attention`` weights embeddings by gated attention (Ilse et al., 2018). All are
    invariant to the order of the windows.
    """

    def __init__(self, encoder: Net1D, n_out: int, aggregation: str = "mean_logits", dropout: float = 0.2):
        super().__init__()
        self.encoder, self.aggregation = encoder, aggregation
        d = encoder.out_dim
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d, n_out)
        if aggregation == "attention":
            self.att_v, self.att_u, self.att_w = nn.Linear(d, 128), nn.Linear(d, 128), nn.Linear(128, 1)

    def forward(self, x, distinct=None):  # x: [B, W, 1, L]; distinct: [B, W] bool, or all windows
        b, w = x.shape[:2]
        emb = self.encoder(x.reshape(b * w, *x.shape[2:])).reshape(b, w, -1)
        if distinct is None:
            weight = torch.full((b, w, 1), 1.0 / w, dtype=emb.dtype, device=emb.device)
        else:
            weight = distinct.to(emb.dtype).unsqueeze(-1)
            weight = weight / weight.sum(1, keepdim=True).clamp(min=1.0)
        if self.aggregation == "mean_logits":
            return (self.head(self.drop(emb)) * weight).sum(1)
        if self.aggregation == "mean_embedding":
            return self.head(self.drop((emb * weight).sum(1)))
        a = self.att_w(torch.tanh(self.att_v(emb)) * torch.sigmoid(self.att_u(emb)))  # [B, W, 1]
        if distinct is not None:  # repeats of a window get no attention of their own
            a = a.masked_fill(~distinct.unsqueeze(-1), float("-inf"))
        return self.head(self.drop((torch.softmax(a, dim=1) * emb).sum(1)))


def masked_bce(logits, y, mask, pos_weight=None):
    """Binary cross-entropy averaged over the labelled (mask) entries only: a null label is
    neither a positive nor a negative and contributes no gradient."""
    loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none", pos_weight=pos_weight)
    mask = mask.to(loss.dtype)
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def macro_auc(y: np.ndarray, mask: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean AUC over columns with both classes among labelled entries; per-column AUCs (NaN where undefined)."""
    out = np.full(y.shape[1], np.nan)
    for j in range(y.shape[1]):
        m = mask[:, j]
        yy = y[m, j]
        if 0 < yy.sum() < len(yy):
            out[j] = roc_auc_score(yy, scores[m, j])
    return (float(np.nanmean(out)) if np.isfinite(out).any() else float("nan")), out


def build_encoder(cfg: FinetuneConfig) -> tuple[Net1D, str]:
    """The PPG encoder and a sentence on where its weights came from."""
    if cfg.init is None:
        return Net1D(cfg.ppg), "no --init: the encoder trains from scratch"
    init = Path(cfg.init)
    if init.is_dir():  # a pretrain run: its exported encoder and architecture
        try:
            arch = Net1DConfig(**json.loads((init / "config.json").read_text())["ppg"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(init / "config.json", "--init: not a pretraining run's configuration "
                             f"({type(err).__name__}: {err})") from None
        if arch != cfg.ppg:
            log.info("--init run uses another encoder width than the preset: taking the run's")
            cfg.ppg = arch
        path = init / "ppg_encoder.pth"
        if not path.exists():
            raise PhewasError(f"{init}: no ppg_encoder.pth (has the pretraining run finished?)")
        return load_anyppg(path, cfg.ppg), f"initialised from pretraining run {init}"
    state = read_state_dict(init)
    if "model" in state and isinstance(state["model"], dict):  # a pretrain checkpoint file
        state = {k.removeprefix("ppg_encoder."): v for k, v in state["model"].items() if k.startswith("ppg_encoder.")}
        enc = Net1D(cfg.ppg)
        load_strict(enc, state, init)
        return enc, f"initialised from pretraining checkpoint {init}"
    return load_anyppg(init, cfg.ppg), f"initialised from AnyPPG weights {init}"


def target_phecodes(store, labels: pl.DataFrame, k: int) -> list[str]:
    """Phecodes with at least ``k`` positive training stays (``TRAIN_SPLITS``, stays with windows)."""
    train = store.stays.filter(pl.col("split").is_in(TRAIN_SPLITS) & (pl.col("n_ppg_windows") > 0))["stay_id"]
    lab = labels.filter(pl.col("stay_id").is_in(train.implode()))
    counts = lab.select(pl.exclude("stay_id").eq(1).sum()).row(0, named=True)
    return [p for p, n in counts.items() if n >= k]


@torch.no_grad()
def predict_dataset(model, dataset: StayWindows, device, batch: int, bf16: bool) -> np.ndarray:
    m = unwrap(model)
    was = m.training
    m.eval()
    out = []
    for a in range(0, len(dataset), batch):
        _, x, _, _, distinct = dataset.__getitems__(list(range(a, min(a + batch, len(dataset)))))
        with autocast(device, bf16):
            out.append(torch.sigmoid(m(x.to(device), distinct.to(device)).float()).cpu().numpy())
    m.train(was)
    return np.concatenate(out) if out else np.zeros((0, m.head.out_features), np.float32)


def finetune(cohort, run, cfg: FinetuneConfig, *, resume: bool = False, overwrite: bool = False,
             stop_after: int | None = None) -> dict:
    """Train; returns the run's summary. ``stop_after`` ends this invocation (resumably) after that
    many steps."""
    return launch(lambda *a: _finetune(cfg, *a), cohort, run, cfg, resume=resume, overwrite=overwrite,
                  stop_after=stop_after)


def _finetune(cfg, cohort, run, d, resume, stop_after, started):
    ckpt_dir = run / "checkpoints"
    torch.manual_seed(cfg.seed)
    encoder, origin = build_encoder(cfg)
    log.info(origin)
    store = open_segments(cohort)
    labels = pl.read_parquet(cohort / "labels.parquet")
    stays = pl.read_parquet(cohort / "stays.parquet")
    if resume and (run / "targets.json").exists():
        targets = json.loads((run / "targets.json").read_text())
    else:
        targets = target_phecodes(store, labels, cfg.min_train_positives)
    if not targets:
        raise PhewasError(f"no phecode has {cfg.min_train_positives} positive training stays; lower --min-train-positives")
    log.info("%d target phecodes (at least %d positive training stays)", len(targets), cfg.min_train_positives)

    train = StayWindows(store, labels, targets, TRAIN_SPLITS, cfg.segments_per_stay)
    val = StayWindows(store, labels, targets, ["pretrain_val"], cfg.segments_per_stay)
    check_batches(d, cfg.batch_size, cfg.grad_accum, len(train), len(val), "stays")
    heldout_patients = set(stays.filter(pl.col("split") == "heldout")["patient_id"])
    patient_of = dict(zip(stays["stay_id"], stays["patient_id"]))
    leaked = {s for s in train.stay_ids + val.stay_ids if patient_of[s] in heldout_patients}
    if leaked:
        raise PhewasError(f"{len(leaked)} training/validation stays belong to held-out patients; refusing to train")
    started()  # set-up worked: the run folder appears (or replaces the old one, with --force)
    if d.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        write_json(run / "config.json", asdict(cfg))
        write_json(run / "targets.json", targets)

    model = StayClassifier(encoder, len(targets), cfg.aggregation, cfg.head_dropout).to(d.device)
    pos_weight = None
    if cfg.pos_weight:
        pos = train.y.sum(0) * 1.0
        neg = (train.mask & (train.y == 0)).sum(0)
        pos_weight = torch.tensor(np.clip(neg / np.maximum(pos, 1), 1, cfg.pos_weight_max), dtype=torch.float32,
                                  device=d.device)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay, {"encoder.": cfg.encoder_lr}, base_lr=cfg.lr))
    per_epoch = len(train) // cfg.batch_size
    total = per_epoch * cfg.epochs
    sched = warmup_cosine(opt, cfg.warmup_steps, total)
    step, best, since_best = 0, -1.0, 0
    if resume and (ckpt_dir / "last.pt").exists():
        state = load_checkpoint(ckpt_dir / "last.pt", model=model, optimizer=opt, scheduler=sched)
        step, best, since_best = state["step"], state["best"], int(state["since_best"])
        log.info("resumed at step %d", step)
    train_model = DDP(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None) if d.world > 1 else model
    if cfg.compile:
        train_model = torch.compile(train_model)
    sampler = ResumableBatches(len(train), cfg.batch_size, cfg.seed, d.rank, d.world, start_step=step,
                               total_steps=total)
    loader = torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=identity_collate,
                                         num_workers=cfg.workers, pin_memory=d.device.type == "cuda",
                                         generator=torch.Generator().manual_seed(cfg.seed + step))
    eval_every = max(1, per_epoch // cfg.evals_per_epoch)
    metrics = MetricsLog(run, enabled=d.main)
    bar = progress(total=total, initial=step, desc="finetune", unit="step", disable=None if d.main else True)
    end = total if stop_after is None else min(total, step + stop_after)
    t0, windows, stopped_early = time.perf_counter(), 0, False
    model.train()
    for stay_ids, x, y, mask, distinct in loader:
        if step >= end:
            break
        bad = [s for s in stay_ids if patient_of[s] in heldout_patients]
        assert not bad, f"{len(bad)} held-out stays in a training batch"
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for xs, ys, ms, ds in zip(x.chunk(cfg.grad_accum), y.chunk(cfg.grad_accum), mask.chunk(cfg.grad_accum),
                                  distinct.chunk(cfg.grad_accum)):
            with autocast(d.device, cfg.bf16):
                logits = train_model(xs.to(d.device, non_blocking=True), ds.to(d.device, non_blocking=True))
            loss = masked_bce(logits.float(), ys.to(d.device), ms.to(d.device), pos_weight) / cfg.grad_accum
            loss.backward()
            loss_sum += float(loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        sched.step()
        step += 1
        windows += x.shape[0] * x.shape[1] * d.world
        bar.update()
        metrics.log(step, train_loss=loss_sum, grad_norm=grad_norm, lr_head=sched.get_last_lr()[0])
        if d.main and (step % eval_every == 0 or step == total):
            auc, _ = macro_auc(val.y > 0.5, val.mask, predict_dataset(model, val, d.device, cfg.batch_size, cfg.bf16))
            metrics.log(step, val_macro_auc=auc, windows_per_s=windows / (time.perf_counter() - t0))
            if auc > best:
                best, since_best = auc, 0
                save_checkpoint(ckpt_dir / "best.pt", model=model, optimizer=opt, scheduler=sched, step=step,
                                best=best, extra={"since_best": 0})
            else:
                since_best += 1
            if since_best >= cfg.patience:
                stopped_early = True
        if d.world > 1 and (step % eval_every == 0 or step == total):  # every rank stops together
            flag = torch.tensor([int(stopped_early)], device=d.device if d.device.type == "cuda" else "cpu")
            torch.distributed.broadcast(flag, 0)
            stopped_early = bool(flag.item())
        if d.main and (step % eval_every == 0 or step == end or stopped_early):
            save_checkpoint(ckpt_dir / "last.pt", model=model, optimizer=opt, scheduler=sched, step=step, best=best,
                            extra={"since_best": since_best})
        if stopped_early:
            log.info("early stop at step %d: no better validation macro AUC in %d evaluations", step, cfg.patience)
            break
    bar.close()
    metrics.close()
    finished = stopped_early or step >= total
    if not finished:
        return {"step": step, "finished": False}
    if not d.main:
        return {"step": step, "finished": True, "main": False}
    summary = {"step": step, "finished": True, "stopped_early": stopped_early, "best_val_macro_auc": best,
               "targets": len(targets), "train_stays": len(train), "val_stays": len(val),
               "stays_without_windows_dropped": train.dropped + val.dropped, "init": origin,
               "windows_per_s_last_session": windows / max(time.perf_counter() - t0, 1e-9)}
    write_manifest(run, command="finetune", inputs={"cohort": str(cohort.resolve()), "init": cfg.init},
                   parameters=asdict(cfg), summary=summary)
    return summary


def predict(run, cohort, split: str = "heldout", *, device: str = "auto", batch: int = 32,
            overwrite: bool = False, allow_unfinished: bool = False) -> dict:
    """Write ``RUN/predictions.parquet`` (``stay_id`` + one Float32 probability column per target
    phecode) for every stay of ``split``, from the run's best checkpoint and its own settings.

    A stay whose store holds no valid window gets each phecode's training prevalence (counted in
    the manifest), so that the file covers the whole split; the ``n_windows`` column (distinct
    windows behind each stay's scores, 0 for those) lets ``report`` leave them out. A run that has not finished (stopped
    with ``--stop-after-steps``, or killed) is refused unless ``allow_unfinished``, which the
    predictions' manifest then records.
    """
    from cohorts.splits import SPLITS

    run, cohort = Path(run), Path(cohort)
    check_settings((split in SPLITS, "--split", f"one of {SPLITS}", split),
                   (batch >= 1, "--batch-size", "at least 1", batch))
    finished = (run / "manifest.json").exists()
    if (run / "config.json").exists() and not finished and not allow_unfinished:
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
    raw["ppg"] = Net1DConfig(**raw["ppg"])
    cfg = FinetuneConfig(**raw)
    targets = json.loads((run / "targets.json").read_text())
    d = setup_distributed(device)
    model = StayClassifier(Net1D(cfg.ppg), len(targets), cfg.aggregation, cfg.head_dropout)
    best = run / "checkpoints" / "best.pt"
    load_checkpoint(best, model=model)
    model.to(d.device)
    store = open_segments(cohort)
    labels = pl.read_parquet(cohort / "labels.parquet")
    ds = StayWindows(store, labels, targets, [split], cfg.segments_per_stay)
    probs = predict_dataset(model, ds, d.device, batch, cfg.bf16)
    train = StayWindows(store, labels, targets, TRAIN_SPLITS, 1)
    prior = (train.y * train.mask).sum(0) / np.maximum(train.mask.sum(0), 1)
    stays = pl.read_parquet(cohort / "stays.parquet").filter(pl.col("split") == split)["stay_id"].to_list()
    have = set(ds.stay_ids)
    missing = [s for s in stays if s not in have]
    ids = ds.stay_ids + missing
    probs = np.vstack([probs, np.tile(prior, (len(missing), 1))]).astype(np.float32)
    n_windows = np.concatenate([np.minimum(ds.count, cfg.segments_per_stay), np.zeros(len(missing), np.int64)])
    df = pl.DataFrame({"stay_id": ids, "n_windows": pl.Series(n_windows, dtype=pl.Int32),
                       **{p: probs[:, j] for j, p in enumerate(targets)}}).sort("stay_id")
    tmp = run / ".predictions.parquet.tmp"
    df.write_parquet(tmp)
    tmp.replace(run / "predictions.parquet")
    manifest = {"command": "predict", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "predictions_sha256": file_sha256(run / "predictions.parquet"),
                "checkpoint": {"path": str(best.resolve()), "sha256": file_sha256(best)},
                "cohort": str(cohort.resolve()), "split": split, "stays": len(ids), "phecodes": len(targets),
                "stays_without_windows_given_prior": len(missing), "windows_per_stay": cfg.segments_per_stay,
                "run_finished": finished, "allow_unfinished": allow_unfinished, "versions": versions()}
    write_json(run / "predictions.manifest.json", manifest)
    return manifest
