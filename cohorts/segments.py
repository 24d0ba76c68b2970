"""``phewas extract-segments``: preprocessed 10-s PPG windows (and paired ECG) per stay.

Each stay's WFDB records are read once, in worker processes: up to ``per_stay`` PPG windows
sampled at random (seeded per stay) from all of its Pleth records, and for pretraining stays
every valid non-overlapping 10-s window where a Pleth and an II record overlap in time (capped
by ``max_pairs_per_stay``). The result is ``COHORT/segments/`` (format and reader:
:mod:`cohorts.store`).

Work proceeds in chunks of stays, each written atomically as a part of a store into a work
folder, so a killed run resumes where it stopped; the store appears only when complete.
``shard=(i, n)`` builds one n-th of the stays into ``COHORT/segments.shards/<i>-of-<n>``;
:func:`merge_shards` joins them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from phewas.base.errors import InputError, PhewasError
from phewas.base.io import atomic_dir, file_sha256, read_manifest, remove_stale_temporaries, write_manifest
from phewas.base.progress import progress
from phewas.base.settings import check_settings, setting

from .preprocess import ECG, PPG, ChannelSpec, cut_windows, preprocess_record
from .profiles import DEFAULT_PROFILE, PROFILES
from .profiles import anyppg as release
from .splits import PRETRAIN_SPLITS
from .store import STORE, SegmentStore, assemble, open_segments, write_part

__all__ = ["SegmentConfig", "SegmentStore", "extract_segments", "merge_shards", "open_segments"]

log = logging.getLogger(__name__)


@dataclass
class SegmentConfig:
    """Settings of ``extract-segments``: each field with help text is a flag of the same name,
    every field a key of ``run-all``'s ``[extract_segments]`` table."""

    preprocess: str = setting(DEFAULT_PROFILE, "anyppg: the AnyPPG release's processing, window by window; "
                              "robust: per-record filtering, gap bridging, polarity vote (docs/methods.md)",
                              choices=PROFILES)
    per_stay: int = setting(20, "PPG windows sampled per stay")
    max_pairs_per_stay: int = setting(100, "PPG-ECG pairs kept per stay")
    seed: int = setting(0, "seed of the windows' sampling")
    max_invalid: float = setting(0.25, "largest invalid share of a kept window")
    # the published pipeline's 50 Hz; US mains hum is 60 Hz
    notch_hz: float = setting(50.0, "ECG mains notch (60 in the US; 0 for none)")
    chunk_stays: int = 128  # stays per resumable chunk file

    def __post_init__(self):
        n = self.notch_hz
        check_settings(
            self,
            (self.preprocess in PROFILES, "preprocess", f"one of {', '.join(PROFILES)}"),
            (self.per_stay >= 1, "per_stay", "at least 1"),
            (self.max_pairs_per_stay >= 0, "max_pairs_per_stay", "0 or more"),
            (0 <= self.max_invalid <= 1, "max_invalid", "a share between 0 and 1"),
            # 0 turns the notch off; it must lie below the ECG's Nyquist frequency (250 Hz)
            (n == 0 or 0 < n < ECG.fs / 2, "notch_hz", f"0 (off) or between 0 and {ECG.fs / 2:g} Hz"),
            (self.chunk_stays >= 1, "chunk_stays", "at least 1"),
        )

    def specs(self) -> tuple[ChannelSpec, ChannelSpec]:
        return PPG, ChannelSpec(fs=ECG.fs, band=ECG.band, notch_hz=self.notch_hz or None)


def _read(path: str, expected: int):
    import wfdb
    rec = wfdb.rdrecord(path)
    x = rec.p_signal[:, 0].astype(np.float64)
    if len(x) < expected:
        raise ValueError(f"truncated: {len(x)} of {expected} samples")
    return x, float(rec.fs)


def _stay_rng(seed: int, stay_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(stay_id.encode())])


class Window(NamedTuple):
    """Where a kept PPG window came from (a row of the store's ``ppg_index``)."""

    record: str
    start_us: int | None
    invalid_frac: float


class Pair(NamedTuple):
    """Where a PPG-ECG pair came from (a row of the store's ``pairs_index``)."""

    start_us: int
    ppg_record: str
    ecg_record: str
    invalid_frac_ppg: float
    invalid_frac_ecg: float


@dataclass
class StaySegments:
    """One stay's extraction: its PPG windows (float16 ``[k, 1250]``) and where each came from, its
    PPG-ECG pairs likewise, the number of valid candidate windows, and the records it could not
    read, ``(record, reason)``."""

    stay_id: str
    ppg: np.ndarray = field(default_factory=lambda: np.zeros((0, PPG.window), np.float16))
    windows: list[Window] = field(default_factory=list)
    pair_ppg: np.ndarray = field(default_factory=lambda: np.zeros((0, PPG.window), np.float16))
    pair_ecg: np.ndarray = field(default_factory=lambda: np.zeros((0, ECG.window), np.float16))
    pairs: list[Pair] = field(default_factory=list)
    n_candidates: int = 0
    bad: list[tuple[str, str]] = field(default_factory=list)


def process_stay(job: dict, root: str, cfg: SegmentConfig) -> StaySegments:
    """Windows of one stay. ``job``: ``stay_id``, ``split``, ``pairs`` (bool), ``records`` (list of
    dicts with ``channel``, ``record``, ``n_samples``, ``start_us``)."""
    if cfg.preprocess == "anyppg":
        return _process_stay_anyppg(job, root, cfg)
    ppg_spec, ecg_spec = cfg.specs()
    out = StaySegments(job["stay_id"])
    loaded = {}
    for rec in job["records"]:
        if rec["channel"] == "ecg" and not job["pairs"]:
            continue
        spec = ppg_spec if rec["channel"] == "ppg" else ecg_spec
        try:
            x, fs = _read(os.path.join(root, rec["record"]), rec["n_samples"])
            loaded[rec["record"]] = (rec, *preprocess_record(x, fs, spec, rec["channel"])[:2])
        except (OSError, ValueError, EOFError, IndexError) as err:  # unreadable: skipped and counted
            out.bad.append((rec["record"], f"{type(err).__name__}: {err}"))
    # PPG windows: all valid non-overlapping candidates, then a seeded sample
    cands = []
    for name, (rec, y, bad) in loaded.items():
        if rec["channel"] != "ppg":
            continue
        starts = np.arange(0, len(y) - ppg_spec.window + 1, ppg_spec.window)
        win, frac, kept = cut_windows(y, bad, ppg_spec, starts, cfg.max_invalid)
        for w, f, s in zip(win, frac, kept):
            t = None if rec["start_us"] is None else rec["start_us"] + int(round(s / ppg_spec.fs * 1e6))
            cands.append((w, Window(name, t, float(f))))
    # Paired windows on a common clock where a Pleth and an II record overlap
    pairs = []
    if job["pairs"]:
        ppgs = [v for v in loaded.values() if v[0]["channel"] == "ppg" and v[0]["start_us"] is not None]
        ecgs = [v for v in loaded.values() if v[0]["channel"] == "ecg" and v[0]["start_us"] is not None]
        for prec, py, pbad in ppgs:
            for erec, ey, ebad in ecgs:
                lo = max(prec["start_us"], erec["start_us"])
                hi = min(prec["start_us"] + len(py) / ppg_spec.fs * 1e6, erec["start_us"] + len(ey) / ecg_spec.fs * 1e6)
                t = np.arange(lo, hi - ppg_spec.window_s * 1e6 + 1, ppg_spec.window_s * 1e6)
                if len(t) == 0:
                    continue
                ps = np.round((t - prec["start_us"]) / 1e6 * ppg_spec.fs).astype(np.int64)
                es = np.round((t - erec["start_us"]) / 1e6 * ecg_spec.fs).astype(np.int64)
                ok = (ps + ppg_spec.window <= len(py)) & (es + ecg_spec.window <= len(ey))
                t, ps, es = t[ok], ps[ok], es[ok]
                pw, pf, pk = cut_windows(py, pbad, ppg_spec, ps, cfg.max_invalid)
                ew, ef, ek = cut_windows(ey, ebad, ecg_spec, es, cfg.max_invalid)
                both, pi, ei = np.intersect1d(np.searchsorted(ps, pk), np.searchsorted(es, ek),
                                              return_indices=True)
                for j, a, b in zip(both, pi, ei):
                    pairs.append((pw[a], ew[b], Pair(int(t[j]), prec["record"], erec["record"], float(pf[a]),
                                                     float(ef[b]))))
    return _sample(out, cands, pairs, job, cfg)


def _sample(out: StaySegments, cands: list, pairs: list, job: dict, cfg: SegmentConfig) -> StaySegments:
    """A stay's seeded draws: ``per_stay`` of its PPG windows, at most ``max_pairs_per_stay`` pairs."""
    out.n_candidates = len(cands)
    rng = _stay_rng(cfg.seed, job["stay_id"])
    if cands:
        pick = np.sort(rng.choice(len(cands), size=min(cfg.per_stay, len(cands)), replace=False))
        out.ppg = np.stack([cands[i][0] for i in pick]).astype(np.float16)
        out.windows = [cands[i][1] for i in pick]
    if len(pairs) > cfg.max_pairs_per_stay:
        keep = np.sort(rng.choice(len(pairs), cfg.max_pairs_per_stay, replace=False))
        pairs = [pairs[i] for i in keep]
    if pairs:
        out.pair_ppg = np.stack([p[0] for p in pairs]).astype(np.float16)
        out.pair_ecg = np.stack([p[1] for p in pairs]).astype(np.float16)
        out.pairs = [p[2] for p in pairs]
    return out


def _process_stay_anyppg(job: dict, root: str, cfg: SegmentConfig) -> StaySegments:
    """:func:`process_stay` by the ``anyppg`` profile (:mod:`cohorts.profiles.anyppg`): each Pleth
    record's windows from its first sample, and each overlap of a Pleth with an II record (their
    time spans touching, as the release's extractor pairs them) cut from the overlap's start."""
    out = StaySegments(job["stay_id"])
    raw = {}
    for rec in job["records"]:
        if rec["channel"] == "ecg" and not job["pairs"]:
            continue
        try:
            raw[rec["record"]] = (rec, *_read(os.path.join(root, rec["record"]), rec["n_samples"]))
        except (OSError, ValueError, EOFError, IndexError) as err:  # unreadable: skipped and counted
            out.bad.append((rec["record"], f"{type(err).__name__}: {err}"))
    cands = []
    for name, (rec, x, fs) in raw.items():
        if rec["channel"] != "ppg":
            continue
        kept = release.ppg_windows(x, fs)
        step_us = int(release.WINDOW_S * fs) / fs * 1e6
        for w, i, f in zip(kept.ppg, kept.index, kept.flat):
            t = None if rec["start_us"] is None else rec["start_us"] + int(round(i * step_us))
            cands.append((w, Window(name, t, float(f))))
    pairs = []
    if job["pairs"]:
        def timed(channel):
            return [v for v in raw.values() if v[0]["channel"] == channel and v[0]["start_us"] is not None]
        for erec, ex, efs in timed("ecg"):
            e_end = erec["start_us"] + len(ex) / efs * 1e6
            for prec, px, pfs in timed("ppg"):
                p_end = prec["start_us"] + len(px) / pfs * 1e6
                if p_end < erec["start_us"] or prec["start_us"] > e_end:
                    continue
                lo, hi = max(prec["start_us"], erec["start_us"]), min(p_end, e_end)

                def span(rec, x, fs, lo=lo, hi=hi):
                    a, b = (int(round((t - rec["start_us"]) / 1e6 * fs)) for t in (lo, hi))
                    return x[a:b]
                kept = release.pair_windows(span(prec, px, pfs), pfs, span(erec, ex, efs), efs, cfg.notch_hz or None)
                for p, e, i, fp, fe in zip(kept.ppg, kept.ecg, kept.index, kept.flat, kept.flat_ecg):
                    pairs.append((p, e, Pair(int(round(lo + i * release.WINDOW_S * 1e6)), prec["record"],
                                             erec["record"], float(fp), float(fe))))
    return _sample(out, cands, pairs, job, cfg)


def _process_chunk(args):
    jobs, root, cfg = args
    return [process_stay(j, root, cfg) for j in jobs]


def _jobs(cohort: Path, shard: tuple[int, int]) -> list[dict]:
    stays = pl.read_parquet(cohort / "stays.parquet").filter(pl.col("split") != "excluded")
    records = pl.read_parquet(cohort / "records.parquet")
    i, n = shard
    stays = stays.sort("stay_id")[i::n]
    recs = (records.filter(pl.col("stay_id").is_in(stays["stay_id"].implode()))
            .with_columns(pl.col("start").dt.epoch("us").alias("start_us"))
            .group_by("stay_id").agg(pl.struct("channel", "record", "n_samples", "start_us").alias("records")))
    recs = dict(zip(recs["stay_id"], recs["records"].to_list()))
    return [{"stay_id": s, "split": sp, "pairs": bool(sync and sp in PRETRAIN_SPLITS), "records": recs.get(s, [])}
            for s, sp, sync in stays.select("stay_id", "split", "has_sync_ecg").iter_rows()]


def _save_chunk(path: Path, results: list[StaySegments], splits: dict) -> None:
    """One chunk of stays, written as a part of a store (see :mod:`cohorts.store`), atomically."""
    rows = {"ppg_index": [], "pairs_index": [], "stays": []}
    for r in results:
        s = r.stay_id
        rows["ppg_index"] += [(s, splits[s], k, w.start_us, w.record, w.invalid_frac) for k, w in enumerate(r.windows)]
        rows["pairs_index"] += [(s, splits[s], *pair) for pair in r.pairs]
        rows["stays"].append((s, splits[s], len(r.windows), r.n_candidates, len(r.pairs)))
    arrays = {name: np.concatenate([getattr(r, name) for r in results] or [np.zeros((0, width), np.float16)])
              for name, width in (("ppg", PPG.window), ("pair_ppg", PPG.window), ("pair_ecg", ECG.window))}
    with atomic_dir(path, overwrite=True) as tmp:
        write_part(tmp, {"ppg": arrays["ppg"], "pairs_ppg": arrays["pair_ppg"], "pairs_ecg": arrays["pair_ecg"]}, rows)
        (tmp / "bad.json").write_text(json.dumps([b for r in results for b in r.bad]))


def _store_path(cohort: Path, shard) -> Path:
    i, n = shard
    return cohort / STORE if n == 1 else cohort / f"{STORE}.shards" / f"{i}-of-{n}"


def extract_segments(data_dir, cohort_dir, config: SegmentConfig | None = None, *, shard=(0, 1),
                     workers: int | None = None, overwrite: bool = False) -> dict:
    """Build the segment store (or one shard of it). Returns its manifest.

    Re-running with the same parameters on the same cohort returns the existing manifest
    without work; a killed run resumes from its last complete chunk.
    """
    cfg = config or SegmentConfig()
    cohort = Path(cohort_dir)
    i, n = shard
    if not (0 <= i < n):
        raise ValueError(f"shard must satisfy 0 <= i < n, got {i}/{n}")
    if not (cohort / "manifest.json").exists():
        raise InputError(cohort, "not a cohort folder (no manifest.json): run `phewas build-cohort` first")
    cman = read_manifest(cohort)
    root = Path(data_dir) / cman["parameters"]["columns"]["files"]["waveforms"]
    if not root.is_dir():
        raise InputError(root, "waveform folder not found")
    params = {**asdict(cfg), "shard": [i, n], "cohort_stays_sha256": file_sha256(cohort / "stays.parquet")}
    dest = _store_path(cohort, shard)
    remove_stale_temporaries(dest)  # a killed assembly's temporary (gigabytes at MC-MED scale)
    if dest.exists() and not overwrite:
        if not (dest / "manifest.json").exists():
            raise PhewasError(f"{dest}: exists but is not a finished segment store (no manifest.json); "
                              "pass --force to rebuild it")
        old = read_manifest(dest)
        if old["parameters"] == params:
            return old | {"up_to_date": True}
        raise PhewasError(f"{dest}: exists with other parameters (pass --force to rebuild)")
    work = dest.with_name(f".{dest.name}.work")
    resumable = {**params, "chunk_format": 2}  # format 1 (chunks that were not store parts) is redone, not read
    if work.exists() and (not (work / "params.json").exists()
                          or json.loads((work / "params.json").read_text()) != resumable):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.json").write_text(json.dumps(resumable))

    jobs = _jobs(cohort, shard)
    splits = {j["stay_id"]: j["split"] for j in jobs}
    chunks = [jobs[k:k + cfg.chunk_stays] for k in range(0, len(jobs), cfg.chunk_stays)]
    paths = [work / f"chunk-{k:05d}" for k in range(len(chunks))]
    todo = [k for k, p in enumerate(paths) if not p.exists()]
    bar = progress(total=len(jobs), initial=len(jobs) - sum(len(chunks[k]) for k in todo),
                   desc="extract-segments", unit="stay")
    workers = max(1, workers or os.cpu_count() or 1)
    # split each chunk across workers, then save the chunk when all its parts are back
    sub = max(1, -(-cfg.chunk_stays // workers))
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        run = pool.map if pool is not None else map
        for k in todo:
            parts = [chunks[k][j:j + sub] for j in range(0, len(chunks[k]), sub)]
            results = [r for part in run(_process_chunk, [(p, str(root), cfg) for p in parts]) for r in part]
            _save_chunk(paths[k], results, splits)
            bar.update(len(chunks[k]))
    bar.close()
    with atomic_dir(dest, overwrite=True) as tmp:
        bad = [b for c in paths for b in json.loads((c / "bad.json").read_text())]  # as _save_chunk wrote
        counts = assemble(paths, tmp, cfg.per_stay, bad)
        if counts["bad_records"]["count"]:  # names carry visit ids: the manifest lists them, not the log
            log.warning("%d unreadable or truncated records skipped; listed under counts.bad_records in "
                        "%s/manifest.json", counts["bad_records"]["count"], dest)
        manifest = write_manifest(tmp, command="extract-segments",
                                  inputs={"data": str(Path(data_dir).resolve()), "cohort": str(cohort.resolve())},
                                  parameters=params, counts=counts)
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def merge_shards(cohort_dir, n: int, *, overwrite: bool = False) -> dict:
    """Join ``COHORT/segments.shards/<i>-of-<n>`` (all present and complete) into ``COHORT/segments``."""
    cohort = Path(cohort_dir)
    shards = [_store_path(cohort, (i, n)) for i in range(n)]
    missing = [str(s) for s in shards if not (s / "manifest.json").exists()]
    if missing:
        raise PhewasError(f"cannot merge: {len(missing)} of {n} shards missing or incomplete ({missing[0]}, ...)")
    mans = [read_manifest(s) for s in shards]
    base = {k: v for k, v in mans[0]["parameters"].items() if k != "shard"}
    for s, m in zip(shards, mans):
        if {k: v for k, v in m["parameters"].items() if k != "shard"} != base:
            raise PhewasError(f"{s}: built with other parameters than shard 0")
    bad = [(r, "") for m in mans for r in m["counts"]["bad_records"]["records"]]
    with atomic_dir(cohort / STORE, overwrite=overwrite) as tmp:
        counts = assemble(shards, tmp, base["per_stay"], bad)  # a shard is a part like any chunk
        manifest = write_manifest(tmp, command="extract-segments --merge", inputs={"shards": [str(s) for s in shards]},
                                  parameters={**base, "shard": [0, 1], "merged_from": n}, counts=counts)
    return manifest


