"""``phewas pretrain``: ECG-guided contrastive pretraining of the PPG encoder (``--objective clip``,
AnyPPG's), or the paper's self-supervised baselines on PPG alone (``simclr``, ``byol``), on the
same pairs, loop and resume guarantees.

Reads top to bottom: the recipe's settings (:data:`encoder.config.RECIPES`, then the preset, then
flags), the model (:mod:`encoder.objectives`), the optional ECG feature cache, the batches (the
release's fixed chunks, or pairs shuffled freely), the optimiser and schedule, the training loop,
and the finish: the best or last weights exported in AnyPPG's format and, for CLIP, the retrieval
test. One process on CPU; one process per GPU under ``torchrun`` (DistributedDataParallel).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from cohorts.corpus import open_pairs
from cohorts.store import check_profiles, open_segments
from phewas.base.errors import PhewasError, SettingError
from phewas.base.io import file_sha256, write_json
from phewas.base.progress import progress

from .checkpoints import initial_encoder, load_checkpoint, load_ecgfounder, save_anyppg, unwrap
from .clip import retrieval_metrics
from .config import PretrainConfig
from .data import PairUnion, PairWindows, identity_collate, read_rows
from .distributed import autocast, precision, seed_ranks
from .loop import Hooks, LoopSettings, TrainState, in_batches, train_batches
from .net1d import Net1D
from .objectives import OBJECTIVES
from .optim import param_groups, release_cosine, warmup_cosine
from .runs import RunResult, Session, check_batches, init_profile
from .sampler import ChunkBatches
from .training import Prepared, train_run

log = logging.getLogger(__name__)


class CachedPairs(PairWindows):
    """Pairs whose ECG side is a precomputed feature vector: ``(ppg [1, 1250], features [D])``."""

    def __init__(self, store, splits, features: np.ndarray):
        super().__init__(store, splits)
        self.features = features

    def __getitems__(self, idx):
        rows = self.rows[np.asarray(idx)]
        ppg = read_rows(self.store.pairs_ppg_array, rows)[:, None, :]
        return torch.from_numpy(ppg), torch.from_numpy(read_rows(self.features, rows))


def ecg_feature_cache(store, encoder: Net1D, key: str, device, batch: int = 256, d=None, bf16: bool = True
                      ) -> np.ndarray:
    """ECG-encoder features of every pair, computed once and kept beside the segment store.

    Under torchrun (``d`` with several processes) every rank computes its share of the rows:
    rank 0 creates the file under a temporary name, each rank writes its own rows into it, and
    rank 0 gives it its name once all have (barriers between); then every rank maps the finished
    file. No rank waits on another's whole pass, and none maps a half-written file.
    """
    folder = store.path / "ecg_cache"
    path = folder / f"{key}.npy"
    n = store.pairs_ecg_array.shape[0]
    world, rank = (d.world, d.rank) if d is not None else (1, 0)

    def valid() -> bool:
        return path.exists() and np.load(path, mmap_mode="r").shape == (n, encoder.out_dim)

    def barrier():
        if world > 1:
            torch.distributed.barrier()

    done = valid()
    if not done:
        tmp = folder / f".{key}.npy.tmp-shared"
        if rank == 0:
            folder.mkdir(exist_ok=True)
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, encoder.out_dim)).flush()
        barrier()
        out = np.load(tmp, mmap_mode="r+")
        encoder = encoder.to(device).eval()
        share = -(-n // world)
        lo, hi = rank * share, min(n, (rank + 1) * share)
        with torch.no_grad():
            for a in progress(range(lo, hi, batch), desc="ECG feature cache", unit="batch",
                              disable=None if rank == 0 else True):
                rows = np.asarray(store.pairs_ecg_array[a:min(a + batch, hi)], np.float32)
                x = torch.from_numpy(rows)[:, None]
                x = (x.pin_memory() if device.type == "cuda" else x).to(device, non_blocking=True)
                with autocast(device, bf16):
                    out[a:a + len(rows)] = encoder(x).float().cpu().numpy()
        out.flush()
        del out
        barrier()
        if rank == 0:
            os.replace(tmp, path)
        barrier()
    if not valid():
        raise PhewasError(f"{path}: ECG feature cache missing or of the wrong shape after it was written")
    return np.load(path, mmap_mode="r")


def _cache_key(cfg: PretrainConfig, device) -> str:
    h = hashlib.sha256(file_sha256(cfg.ecg_checkpoint).encode() if cfg.ecg_checkpoint else b"scratch")
    h.update(json.dumps(cfg.ecg.to_dict(), sort_keys=True).encode())
    h.update(f"bf16={cfg.bf16 and device.type == 'cuda'}".encode())  # the precision the features were made in
    return h.hexdigest()[:16]


def process_batch(cfg: PretrainConfig, world: int) -> int:
    """Pairs per process and step: ``device_batch``, or the global ``batch_size`` shared out."""
    if cfg.device_batch:
        return cfg.device_batch
    if cfg.batch_size % world:
        raise SettingError(f"--batch-size: must be a multiple of the {world} processes, got {cfg.batch_size}")
    return cfg.batch_size // world


def batches(dataset, cfg: PretrainConfig, d, step: int, total: int | None):
    """This process's batches from ``step`` on: the release's fixed chunks when ``chunk_size``
    is set (:class:`~encoder.sampler.ChunkBatches`), else pairs shuffled each epoch."""
    if not cfg.chunk_size:
        return train_batches(dataset, process_batch(cfg, d.world) * d.world, cfg.seed, cfg.workers, d, step, total)
    sources = dataset.source_indices() if hasattr(dataset, "source_indices") else [np.arange(len(dataset))]
    sampler = ChunkBatches(sources, cfg.chunk_size, process_batch(cfg, d.world) // cfg.chunk_size,
                           cfg.seed, d.rank, d.world, start_step=step, total_steps=total)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=identity_collate,
                                       num_workers=cfg.workers, pin_memory=d.device.type == "cuda",
                                       generator=torch.Generator().manual_seed(cfg.seed + step))


def steps_per_epoch(n, cfg: PretrainConfig, world: int) -> tuple[int, int]:
    """``(optimiser steps per epoch, batches per epoch before sharing out)`` of ``n`` pairs (a
    count, or a list of counts per source: chunks are cut within each)."""
    per = process_batch(cfg, world)
    sizes = list(n) if isinstance(n, (list, tuple)) else [n]
    if cfg.chunk_size:
        probe = ChunkBatches([np.arange(k) for k in sizes], cfg.chunk_size, per // cfg.chunk_size, 0, 0, world)
        return probe.per_epoch, probe.batches
    return sum(sizes) // (per * world), sum(sizes) // per


def schedule(opt, cfg: PretrainConfig, total: int, batches_per_epoch: int, world: int):
    """The recipe's learning-rate schedule (:mod:`encoder.optim`)."""
    if cfg.schedule_ticks == "world":  # the release: ticks counted as accelerate advances them
        ticks = cfg.epochs * batches_per_epoch if cfg.epochs else total * world
        return release_cosine(opt, cfg.warmup_steps, ticks, world)
    return warmup_cosine(opt, cfg.warmup_steps, total)


@torch.no_grad()
def evaluate_loss(model, dataset, cfg, device, max_batches: int = 50) -> float:
    """Mean loss over the first ``max_batches`` full batches of one process's size (the
    contrastive loss depends on the batch, so a last partial batch would not compare)."""
    objective = OBJECTIVES[cfg.objective]
    m = unwrap(model)
    m.eval()
    b = min(process_batch(cfg, 1) if cfg.device_batch else cfg.batch_size, len(dataset))
    n = min(len(dataset) // b, max_batches)
    # validation's augmentations: draws of their own (2 ** 32 is never a training step)
    losses = [objective.loss(m, batch, cfg, device, False, (cfg.seed, 2 ** 32, i, 0))
              for batch, i in zip(in_batches(_first(dataset, n * b), b, cfg.workers, device.type == "cuda"),
                                  range(n))]
    losses = [float(x) for x in losses]  # read once, after the last batch
    m.train()
    _freeze_bn_if_frozen(m, cfg)
    return float(np.mean(losses)) if losses else float("nan")


class _First(torch.utils.data.Dataset):
    """The first ``n`` items of a dataset that reads whole batches (``__getitems__``)."""

    def __init__(self, dataset, n: int):
        self.dataset, self.n = dataset, n

    def __len__(self):
        return self.n

    def __getitems__(self, idx):
        return self.dataset.__getitems__(idx)


def _first(dataset, n: int):
    return _First(dataset, min(n, len(dataset)))


@torch.no_grad()
def embed_pairs(model, dataset, device, batch: int = 256, workers: int = 0):
    m = unwrap(model)
    m.eval()
    ps, es = [], []
    for ppg, ecg in in_batches(dataset, batch, workers, device.type == "cuda"):
        p, e, _ = m(ppg.to(device, non_blocking=True), ecg.to(device, non_blocking=True))
        ps.append(p.float().cpu().numpy())
        es.append(e.float().cpu().numpy())
    return np.concatenate(ps), np.concatenate(es)


RETRIEVAL_COLUMNS = {"source": pl.String, "split": pl.String, "n": pl.Int64, "batch_size": pl.Int64,
                     "recall@1": pl.Float64, "recall@5": pl.Float64, "recall@10": pl.Float64, "mrr": pl.Float64}


def retrieval_table(model, tests: dict, cfg, device) -> tuple[pl.DataFrame, dict]:
    """PPG-to-ECG retrieval on each source's test pairs, as the AnyPPG paper's Table 2 lays it out:
    a row per source (``n`` pairs; R@1, R@5, R@10 and MRR within batches of ``retrieval_batch``
    pairs, the release's evaluation batch), then, with several sources, ``all`` (the
    sample-weighted average, weights ``n``) and ``macro`` (the sources' plain mean). Returns the
    table and the summary's figures (one source's, or the weighted average's)."""
    rows, first = [], None
    for name, dataset in tests.items():
        if len(dataset) == 0:
            continue
        p, e = embed_pairs(model, dataset, device, workers=cfg.workers)
        r = retrieval_metrics(p, e, min(cfg.retrieval_batch, len(p)))
        first = first or r
        rows.append({"source": name, "split": "pretrain_test", "n": len(p), "batch_size": r["batch_size"],
                     **{k: r[k] for k in ("recall@1", "recall@5", "recall@10", "mrr")}})
    if len(rows) > 1:
        n = np.array([r["n"] for r in rows], np.float64)
        for label, w in (("all", n / n.sum()), ("macro", np.full(len(rows), 1 / len(rows)))):
            rows.append({"source": label, "split": "pretrain_test", "n": int(n.sum()), "batch_size": None,
                         **{k: float(np.dot(w, [r[k] for r in rows[:len(n)]]))
                            for k in ("recall@1", "recall@5", "recall@10", "mrr")}})
    table = pl.DataFrame(rows, schema=RETRIEVAL_COLUMNS)
    if len(rows) <= 1:
        return table, (first or {}) | {"split": "pretrain_test"}
    batch = min(r["batch_size"] for r in rows if r["batch_size"])
    weighted = rows[-2]
    return table, {k: weighted[k] for k in ("recall@1", "recall@5", "recall@10", "mrr")} | {
        "batch_size": batch, "chance_recall@1": 1.0 / batch, "split": "pretrain_test", "average": "sample-weighted",
        "sources": len(rows) - 2}


def _freeze_bn_if_frozen(model, cfg):
    if cfg.objective == "clip" and cfg.ecg_frozen and model.ecg_encoder is not None:
        model.ecg_encoder.eval()


def pretrain(cohort, run, cfg: PretrainConfig, *, resume: bool = False, overwrite: bool = False,
             stop_after_steps: int | None = None, pairs=()) -> RunResult:
    """``phewas pretrain``: train on the pairs of ``cohort``'s segment store and of the pair stores
    ``pairs`` (``extract-pairs``; ``cohort`` may be None when they are given). ``stop_after_steps``
    ends this invocation (resumably) after that many steps, for time-limited job schedulers."""
    if cohort is None and not pairs:
        raise SettingError("--cohort or --pairs: pretraining needs a cohort's pairs, pair stores, or both")
    if cfg.objective == "clip" and not cfg.ecg_frozen and not cfg.ecg_from_scratch:
        raise SettingError("--ecg-checkpoint: CLIP pretraining aligns the PPG encoder with a frozen ECGFounder; "
                           "give its checkpoint, or pass --ecg-from-scratch to train the ECG encoder too")
    if cfg.chunk_size and cfg.loss_scope == "global":
        raise SettingError("--chunk-size: chunked batches differ in size across processes; use them with "
                           "--loss-scope device (as the anyppg recipe does)")
    return train_run("pretrain", lambda session: _prepare(cfg, [Path(p) for p in pairs], session), cohort, run,
                     cfg, resume=resume, overwrite=overwrite, stop_after_steps=stop_after_steps)


def open_stores(cohort, pairs) -> dict:
    """Source name -> store: the cohort's segment store (``mcmed``) and each pair store (its
    source; a second store of one source is numbered)."""
    stores = {}
    if cohort is not None:
        stores["mcmed"] = open_segments(cohort)
    for path in pairs:
        store = open_pairs(path)
        name, k = store.source, 2
        while name in stores:
            name, k = f"{store.source}-{k}", k + 1
        stores[name] = store
    return stores


def _prepare(cfg, pair_paths, session: Session) -> Prepared:
    """Pretraining's set-up: stores, encoders (the ECG features cached where asked), the
    objective's model, data, optimiser and schedule, the loop's hooks, and its finish."""
    cohort, run, d = session.cohort, session.run, session.d
    ckpt_dir = run / "checkpoints"
    torch.manual_seed(cfg.seed)
    stores = open_stores(cohort, pair_paths)
    profile = check_profiles({str(st.path): st.profile for st in stores.values()} | init_profile(cfg.init))
    objective = OBJECTIVES[cfg.objective]

    # Model
    ppg_encoder, arch, origin = initial_encoder(cfg)
    cfg = replace(cfg, ppg=arch)  # the architecture trained, as config.json records it
    log.info(origin)
    features, ecg_encoder = None, None
    if objective.uses_ecg:
        if cfg.ecg_frozen:
            ecg_encoder, report = load_ecgfounder(cfg.ecg_checkpoint, cfg.ecg)
            log.info("ECG encoder loaded from %s (%d tensors used, %d ignored); frozen", cfg.ecg_checkpoint,
                     report["used"], len(report["ignored"]))
            for p in ecg_encoder.parameters():
                p.requires_grad_(False)
        else:
            ecg_encoder = Net1D(cfg.ecg)
            log.info("--ecg-from-scratch: the ECG encoder trains too")
        if cfg.use_cache:
            if not cfg.ecg_frozen:
                raise PhewasError("--cache-ecg needs a frozen ECG encoder (--ecg-checkpoint)")
            key = _cache_key(cfg, d.device)
            features = {name: ecg_feature_cache(st, ecg_encoder, key, d.device, d=d, bf16=cfg.bf16)
                        for name, st in stores.items()}
            ecg_encoder = None
    model = objective.build(ppg_encoder, cfg, ecg_encoder, cfg.ecg.out_dim).to(d.device)
    _freeze_bn_if_frozen(model, cfg)
    seed_ranks(cfg.seed, d.rank)  # the weights start alike; each rank's dropout draws its own masks
    gather = cfg.loss_scope == "global"
    # batch norm over every rank's batch when the loss sees every rank's features (SimCLR's global
    # BN): else positives share their rank's statistics, and results depend on the world size.
    # torch's SyncBatchNorm runs on GPUs only.
    sync_bn = cfg.sync_bn if cfg.sync_bn is not None else (gather and d.world > 1 and d.device.type == "cuda")
    if sync_bn and d.world > 1 and d.device.type != "cuda":
        raise SettingError("--sync-bn: torch's SyncBatchNorm needs GPUs; leave it off on CPU processes")

    # Data: every store's pairs of a split as one dataset; the release's chunks are cut per source
    def source_pairs(name, split):
        st = stores[name]
        return CachedPairs(st, [split], features[name]) if features is not None else PairWindows(st, [split])

    def pairs(split):
        return PairUnion([source_pairs(name, split) for name in stores], list(stores))
    train, val = pairs("pretrain_train"), pairs("pretrain_val")
    tests = {name: source_pairs(name, "pretrain_test") for name in stores}
    per_epoch, batches_per_epoch = steps_per_epoch([len(x) for x in train.datasets], cfg, d.world)
    total = cfg.steps or cfg.epochs * per_epoch
    check_batches(d, process_batch(cfg, d.world) * d.world, cfg.grad_accum, len(train), len(val), "pairs")

    # Optimiser and schedule
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay, base_lr=cfg.lr, decay_all=cfg.decay_all),
                            lr=cfg.lr, betas=cfg.betas)
    sched = schedule(opt, cfg, total, batches_per_epoch, d.world)

    # Training loop: each micro-batch brings its own negatives; its augmentations are seeded by
    # (seed, step, micro-batch, rank), so a resumed run draws what the uninterrupted one would
    def loss_fn(train_model, part, step, micro):
        return objective.loss(train_model, part, cfg, d.device, gather, (cfg.seed, step, micro, d.rank))

    def after_step():
        return {"lr": sched.get_last_lr()[0], **objective.after_step(model, cfg)}

    def finish(out) -> tuple[dict, dict]:
        """The kept checkpoint, its PPG encoder in AnyPPG format, and the retrieval test."""
        if cfg.keep == "best" and (ckpt_dir / "best.pt").exists():
            load_checkpoint(ckpt_dir / "best.pt", model=model, restore_random=False)
        save_anyppg(model.ppg_encoder, run / "ppg_encoder.pth")
        retrieval = None
        if objective.uses_ecg:  # PPG-to-ECG retrieval per source: what ECG guidance teaches (Table 2)
            table, retrieval = retrieval_table(model, tests, cfg, d.device)
            table.write_csv(run / "retrieval.csv")
            write_json(run / "retrieval.json", retrieval | {"table": table.to_dicts()})
        summary = {"step": out.state.step, "finished": True, "objective": cfg.objective, "recipe": cfg.recipe,
                   "kept": cfg.keep, "sync_bn": sync_bn, "processes": d.world,
                   "precision": precision(d.device, cfg.bf16), "best_val_loss": out.state.best,
                   "retrieval": retrieval, "train_pairs": len(train), "val_pairs": len(val),
                   "test_pairs": sum(len(t) for t in tests.values()),
                   "pairs_by_source": {name: {"train": len(train.datasets[k]), "val": len(val.datasets[k]),
                                              "test": len(tests[name])} for k, name in enumerate(stores)},
                   "windows_per_s_last_session": out.windows_per_s}
        inputs = {"cohort": None if cohort is None else str(cohort.resolve()),
                  "pairs": [str(p.resolve()) for p in pair_paths], "ecg_checkpoint": cfg.ecg_checkpoint,
                  "preprocess": profile}
        return summary, inputs

    model.train()
    _freeze_bn_if_frozen(model, cfg)
    settings = LoopSettings(total=total, end=total, eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every,
                            grad_accum=cfg.grad_accum, grad_clip=cfg.grad_clip, metric="val_loss",
                            higher_is_better=False, desc="pretrain", log_every=cfg.log_every)
    hooks = Hooks(loss=loss_fn, evaluate=lambda: evaluate_loss(model, val, cfg, d.device), after_step=after_step)
    return Prepared(cfg=cfg, model=model, opt=opt, sched=sched, hooks=hooks, settings=settings,
                    batches=lambda step: batches(train, cfg, d, step, total),
                    state=TrainState(step=0, best=float("inf")),
                    inputs=(profile, [str(st.path.resolve()) for st in stores.values()]), finish=finish,
                    sync_bn=sync_bn, extra={"config": json.dumps(asdict(cfg))})
