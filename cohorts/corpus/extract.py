"""``phewas extract-pairs``: a public pretraining source (PulseDB, MESA, CFS, HSP) to a pair store.

Per file (a night, or a subject's segments), in blocks of :attr:`PairsConfig.block_windows`
windows so that an overnight recording is never held whole: the raw 10-s windows of its PPG and
ECG (:mod:`cohorts.corpus.psg`, :mod:`cohorts.corpus.pulsedb`), then the preprocessing profile:

* ``anyppg`` (the default): the release's processor (:func:`cohorts.profiles.anyppg.window_pairs`):
  the ECG's polarity voted over all of the file's windows first (a first pass over the blocks, as
  the release decides it once per file), then per window the finite and flatness rules, the
  filters at the source rate, the ECG quality check, ``resample_poly`` to 125 / 500 Hz and the
  z-score;
* ``robust``: each block (each segment, for PulseDB) preprocessed as a record
  (:func:`cohorts.preprocess.preprocess_record`), windows cut and rejected as ``extract-segments``
  does.

Subjects are split 8:1:1 into ``pretrain_train``, ``pretrain_val`` and ``pretrain_test`` by the
release's rule (``split.csv``: rows shuffled by pandas' ``sample(frac=1, random_state=927)``, the
first 80% train, the next 10% validation, the rest test), applied to the sorted subjects rather
than to files, so that no subject is on two sides. A file that cannot be read (a missing channel, a
discontinuous or truncated EDF, a PulseDB file without ``Subj_Wins``) is skipped and listed in the
manifest, or with ``strict`` ends the run.

Each file's pairs are written as a part in ``.OUT.work/`` as soon as it is done, so a killed run
resumes where it stopped; ``shard=(i, n)`` converts every n-th file into ``OUT.shards/i-of-n``, and
:func:`merge_pairs` joins the shards.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from importlib import import_module
from pathlib import Path

import numpy as np
import polars as pl

from phewas.base.errors import InputError, PhewasError
from phewas.base.io import atomic_dir, check_output, read_manifest, remove_stale_temporaries, write_manifest
from phewas.base.progress import progress
from phewas.base.settings import check_settings, setting

from ..preprocess import ECG, PPG, ChannelSpec, cut_windows, preprocess_record
from ..profiles import DEFAULT_PROFILE, PROFILES
from ..profiles import anyppg as release
from ..store import concat_arrays
from .store import PAIR_ARRAYS, PAIR_SCHEMA, SPLITS

log = logging.getLogger(__name__)

# --format -> the module that reads it (one module per source, as the converters)
SOURCES = {"pulsedb": "pulsedb", "mesa": "mesa", "cfs": "cfs", "hsp": "hsp"}
FORMATS = tuple(SOURCES)
TRAIN_SHARE, VAL_SHARE = 0.8, 0.1
PART_FORMAT = 1  # raise when a part's files change: older parts are redone


@dataclass
class PairsConfig:
    """Settings of ``extract-pairs``: each field with help text is a flag of the same name, and a
    key of ``run-all``'s ``[pairs.NAME]`` tables."""

    preprocess: str = setting(DEFAULT_PROFILE, "anyppg: the AnyPPG release's processing, window by window; "
                              "robust: per-block filtering, gap bridging, polarity vote", choices=PROFILES)
    channels: str = setting("aliases", "aliases: the source's channel names and the variants other sites and "
                            "years use; release: the release's exact names only", choices=("aliases", "release"))
    ecg_units: str = setting("mv", "mv: ECG in V or uV converted to mV (the unit the release's flatness "
                             "threshold was set for); source: the file's own units, as the release reads them",
                             choices=("mv", "source"))
    notch_hz: float = setting(50.0, "ECG mains notch (the release's 50; 60 for US mains; 0 for none)")
    max_invalid: float = setting(0.25, "largest invalid share of a kept window (robust profile)")
    split_seed: int = setting(927, "seed of the subject split (the release's random_state)")
    block_windows: int = 360  # windows read and processed at a time (an hour): bounds a worker's memory

    def __post_init__(self):
        n = self.notch_hz
        check_settings(
            self,
            (self.preprocess in PROFILES, "preprocess", f"one of {', '.join(PROFILES)}"),
            (self.channels in ("aliases", "release"), "channels", "aliases or release"),
            (self.ecg_units in ("mv", "source"), "ecg_units", "mv or source"),
            (n == 0 or 0 < n < ECG.fs / 2, "notch_hz", f"0 (off) or between 0 and {ECG.fs / 2:g} Hz"),
            (0 <= self.max_invalid <= 1, "max_invalid", "a share between 0 and 1"),
            (self.block_windows >= 1, "block_windows", "at least 1"),
        )


@dataclass(frozen=True)
class PairsSource:
    """What ``extract-pairs`` converts: flags, and keys of ``run-all``'s ``[pairs.NAME]`` tables
    (``source`` relative to the config file). ``--format`` and ``--source`` are required unless
    ``--merge`` joins finished shards."""

    format: str | None = setting(None, "the source's format", choices=FORMATS)
    source: Path | None = setting(None, "the source's folder as distributed")
    strict: bool = setting(False, "a file that cannot be converted is an error (default: skipped and listed)")


def source_module(fmt: str):
    if fmt not in SOURCES:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    return import_module(f"{__package__}.{SOURCES[fmt]}")


def subject_splits(subjects, seed: int = 927) -> dict[str, str]:
    """Each subject's split by the release's rule (see the module's text), on the sorted subjects."""
    import pandas as pd
    order = pd.DataFrame({"subject": sorted(set(subjects))}).sample(frac=1, random_state=seed)["subject"].tolist()
    n = len(order)
    n_train, n_val = int(TRAIN_SHARE * n), int(VAL_SHARE * n)
    names = [SPLITS[0]] * n_train + [SPLITS[1]] * n_val + [SPLITS[2]] * (n - n_train - n_val)
    return dict(zip(order, names))


# ---------------------------------------------------------------- one file


def _robust_block(p_raw: np.ndarray, pfs: float, e_raw: np.ndarray, efs: float, cfg: PairsConfig,
                  contiguous: bool):
    """Windows kept by the robust profile from raw windows ``[k, L]``: a contiguous block is one
    record; separate segments (PulseDB) are each their own. Returns ``(index, ppg, ecg, flat_p,
    flat_e)``."""
    ecg_spec = ChannelSpec(fs=ECG.fs, band=ECG.band, notch_hz=cfg.notch_hz or None)
    records = [(np.arange(len(p_raw)), p_raw.reshape(-1), e_raw.reshape(-1))] if contiguous else \
        [(np.array([i]), p_raw[i], e_raw[i]) for i in range(len(p_raw))]
    out = ([], [], [], [], [])
    for index, p, e in records:
        py, pbad, _ = preprocess_record(p, pfs, PPG, "ppg")
        ey, ebad, _ = preprocess_record(e, efs, ecg_spec, "ecg")
        k = np.arange(len(index))
        pw, pf, pk = cut_windows(py, pbad, PPG, k * PPG.window, cfg.max_invalid)
        ew, ef, ek = cut_windows(ey, ebad, ecg_spec, k * ecg_spec.window, cfg.max_invalid)
        both, pi, ei = np.intersect1d(pk // PPG.window, ek // ecg_spec.window, return_indices=True)
        for store, values in zip(out, (index[both], pw[pi], ew[ei], pf[pi], ef[ei])):
            store.append(values)
    return tuple(np.concatenate(v) if v else v for v in out)


def process_file(job: dict) -> dict:
    """One file's pairs: ``{"ppg", "ecg", "rows", "record"}``, or ``{"skipped": reason}``."""
    cfg, path = job["cfg"], Path(job["path"])
    module = source_module(job["format"])
    try:
        rec = module.open_recording(path, cfg)
    except InputError as err:
        return {"skipped": str(err), "error": err}
    try:
        return _pairs_of(rec, job, cfg)
    except InputError as err:
        return {"skipped": str(err), "error": err}
    finally:
        close = getattr(rec, "close", None)
        if close is not None:
            close()


def _pairs_of(rec, job: dict, cfg: PairsConfig) -> dict:
    n, block = rec.n_windows, cfg.block_windows
    blocks = [(a, min(a + block, n)) for a in range(0, n, block)]

    def raw(a, b):  # the release's extractors hand its processor float32
        p, e = rec.windows(a, b)
        return (p.astype(np.float32), e.astype(np.float32)) if cfg.preprocess == "anyppg" else (p, e)

    inverted = None
    if cfg.preprocess == "anyppg":  # the release decides the ECG's polarity once per file
        votes = np.concatenate([release.ecg_inverted_votes(raw(a, b)[1], rec.ecg_fs, cfg.notch_hz or None)
                                for a, b in blocks])
        inverted = release.ecg_inverted(votes)
    ppg, ecg, index, flat_p, flat_e = [], [], [], [], []
    dropped: dict = {}
    for a, b in blocks:
        p_raw, e_raw = raw(a, b)
        if cfg.preprocess == "anyppg":
            kept = release.window_pairs(p_raw, rec.ppg_fs, e_raw, rec.ecg_fs, cfg.notch_hz or None, inverted)
            parts = (kept.index + a, kept.ppg, kept.ecg, kept.flat, kept.flat_ecg)
            for k, v in kept.dropped.items():
                dropped[k] = dropped.get(k, 0) + v
        else:
            i, p, e, fp, fe = _robust_block(p_raw, rec.ppg_fs, e_raw, rec.ecg_fs, cfg, rec.contiguous)
            parts = (np.asarray(i, np.int64) + a, p, e, fp, fe)
            dropped["invalid"] = dropped.get("invalid", 0) + (b - a) - len(i)
        for store, values in zip((index, ppg, ecg, flat_p, flat_e), parts):
            if len(values):
                store.append(np.asarray(values))
    index = np.concatenate(index) if index else np.zeros(0, np.int64)
    starts = rec.start_s(index)
    rows = [(job["format"], job["subject"], job["record"], float(t), job["split"], float(fp), float(fe))
            for t, fp, fe in zip(starts, np.concatenate(flat_p) if flat_p else [], np.concatenate(flat_e) if flat_e
                                 else [])]
    return {"ppg": np.concatenate(ppg).astype(np.float16) if ppg else np.zeros((0, PPG.window), np.float16),
            "ecg": np.concatenate(ecg).astype(np.float16) if ecg else np.zeros((0, ECG.window), np.float16),
            "rows": rows,
            "record": {"record": job["record"], "subject": job["subject"], "split": job["split"], "windows": n,
                       "pairs": len(rows), "dropped": dropped, "ecg_inverted": inverted, **rec.channels}}


def _write_part(folder: Path, result: dict) -> None:
    with atomic_dir(folder, overwrite=True) as tmp:
        if "skipped" in result:
            (tmp / "skipped.json").write_text(json.dumps({"skipped": result["skipped"]}))
            return
        np.save(tmp / "pairs_ppg.npy", result["ppg"])
        np.save(tmp / "pairs_ecg.npy", result["ecg"])
        pl.DataFrame(result["rows"], schema=PAIR_SCHEMA, orient="row").write_parquet(tmp / "pairs_index.parquet")
        (tmp / "record.json").write_text(json.dumps(result["record"]))


def _run(job: dict) -> dict:
    result = process_file(job)
    _write_part(Path(job["part"]), result)
    return {"file": job["record"], **({"error": result["error"]} if "skipped" in result else {})}


# ---------------------------------------------------------------- the store


def _assemble(parts: list[Path], dest: Path) -> dict:
    """Join finished file parts (those with pairs) into a pair store's files at ``dest``."""
    done = [p for p in parts if (p / "record.json").exists()]
    for name, width in PAIR_ARRAYS.items():
        concat_arrays(done, f"{name}.npy", width, dest)
    index = pl.concat([pl.read_parquet(p / "pairs_index.parquet") for p in done]) if done else \
        pl.DataFrame(schema=PAIR_SCHEMA)
    index.with_row_index("row").write_parquet(dest / "pairs_index.parquet")
    records = [json.loads((p / "record.json").read_text()) for p in done]
    pl.DataFrame([{k: v for k, v in r.items() if k != "dropped"} | {f"dropped_{k}": v for k, v in r["dropped"].items()}
                  for r in records]).write_parquet(dest / "records.parquet")
    return _counts(index, records)


def _counts(index: pl.DataFrame, records: list[dict]) -> dict:
    by_split = {s: int((index["split"] == s).sum()) for s in SPLITS}
    subjects = {s: index.filter(pl.col("split") == s)["subject"].n_unique() for s in SPLITS}
    dropped: dict = {}
    for r in records:
        for k, v in r["dropped"].items():
            dropped[k] = dropped.get(k, 0) + v
    return {"files": len(records), "pairs": index.height, "pairs_by_split": by_split,
            "subjects_by_split": subjects, "windows": sum(r["windows"] for r in records),
            "windows_dropped": dropped, "hours": round(index.height * 10 / 3600, 2)}


def _store_path(out: Path, shard) -> Path:
    i, n = shard
    return out if n == 1 else out.with_name(f"{out.name}.shards") / f"{i}-of-{n}"


def extract_pairs(fmt: str, source, out, config: PairsConfig | None = None, *, shard=(0, 1),
                  workers: int | None = None, overwrite: bool = False, strict: bool = False) -> dict:
    """Convert source ``fmt`` at ``source`` into the pair store ``out`` (or one shard of it);
    returns its manifest. Re-running with the same settings returns the existing manifest; a
    killed run resumes from its finished files."""
    cfg = config or PairsConfig()
    module = source_module(fmt)
    source, out = Path(source), Path(out)
    i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"shard must satisfy 0 <= i < n, got {i}/{n}")
    if not source.is_dir():
        raise InputError(source, f"not a folder (--source names the {fmt} folder as distributed)")
    files = module.files(source)
    if not files:
        raise InputError(source, f"no {fmt} files found (see docs/pretraining-corpus.md for the layout)")
    subjects = {p: module.subject(p, source) for p in files}
    splits = subject_splits(subjects.values(), cfg.split_seed)
    dest = _store_path(out, shard)
    params = {"format": fmt, **asdict(cfg), "shard": [i, n], "strict": strict,
              "files": len(files)}
    remove_stale_temporaries(dest)
    if dest.exists() and not overwrite:
        if (dest / "manifest.json").exists() and read_manifest(dest)["parameters"] == params:
            return read_manifest(dest) | {"up_to_date": True}
        check_output(dest, overwrite=False)
    work = dest.with_name(f".{dest.name}.work")
    resumable = {**params, "part_format": PART_FORMAT, "source": str(source.resolve())}
    if work.exists() and (not (work / "params.json").exists()
                          or json.loads((work / "params.json").read_text()) != resumable):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.json").write_text(json.dumps(resumable))

    mine = list(range(len(files)))[i::n]
    parts = [work / f"file-{k:06d}" for k in mine]
    jobs = [{"cfg": cfg, "format": fmt, "path": str(files[k]), "source": str(source), "part": str(parts[j]),
             "record": str(files[k].relative_to(source)), "subject": subjects[files[k]],
             "split": splits[subjects[files[k]]]} for j, k in enumerate(mine)]
    todo = [j for j in jobs if not Path(j["part"]).exists()]
    bar = progress(total=len(jobs), initial=len(jobs) - len(todo), desc=f"extract-pairs {fmt}", unit="file")
    workers = max(1, min(workers or os.cpu_count() or 1, max(1, len(todo))))
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        run = pool.map if pool is not None else map
        for done in run(_run, todo):
            bar.update(1)
            if strict and "error" in done:
                raise done["error"]
    bar.close()
    skipped = [json.loads((p / "skipped.json").read_text()) | {"file": str(files[k].relative_to(source))}
               for p, k in zip(parts, mine) if (p / "skipped.json").exists()]
    with atomic_dir(dest, overwrite=True) as tmp:
        counts = _assemble(parts, tmp)
        if counts["pairs"] == 0:
            reason = f"; the first skipped: {skipped[0]['skipped']}" if skipped else ""
            raise InputError(source, f"no pair could be made from {len(files)} files{reason}")
        manifest = write_manifest(tmp, command="extract-pairs", inputs={"source": str(source.resolve())},
                                  parameters=params, counts=counts | {"files_skipped": len(skipped)},
                                  skipped=[{"file": s["file"], "reason": s["skipped"]} for s in skipped])
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def merge_pairs(out, n: int, *, overwrite: bool = False) -> dict:
    """Join the ``n`` finished shards ``OUT.shards/i-of-n`` into the pair store ``out``."""
    out = Path(out)
    shards = [_store_path(out, (i, n)) for i in range(n)]
    missing = [str(s) for s in shards if not (s / "manifest.json").exists()]
    if missing:
        raise PhewasError(f"{missing[0]}: shard not finished (run extract-pairs --shard for each of the {n})")
    manifests = [read_manifest(s) for s in shards]
    params = [{k: v for k, v in m["parameters"].items() if k != "shard"} for m in manifests]
    if any(p != params[0] for p in params):
        raise PhewasError(f"{out}: the {n} shards were made with different settings")
    check_output(out, overwrite=overwrite)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        parts = []
        for s in shards:  # each shard is a part with its rows and records
            parts.append(s)
        for name, width in PAIR_ARRAYS.items():
            sizes = [np.load(s / f"{name}.npy", mmap_mode="r").shape[0] for s in parts]
            arr = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=np.float16,
                                            shape=(sum(sizes), width))
            pos = 0
            for s, k in zip(parts, sizes):
                arr[pos:pos + k] = np.load(s / f"{name}.npy", mmap_mode="r")
                pos += k
            arr.flush()
            del arr
        index = pl.concat([pl.read_parquet(s / "pairs_index.parquet").drop("row") for s in parts])
        index.with_row_index("row").write_parquet(tmp / "pairs_index.parquet")
        pl.concat([pl.read_parquet(s / "records.parquet") for s in parts], how="diagonal_relaxed") \
            .write_parquet(tmp / "records.parquet")
        records = [{"windows": w, "dropped": {}} for w in pl.read_parquet(tmp / "records.parquet")["windows"]]
        counts = _counts(index.with_row_index("row"), records)
        counts["windows_dropped"] = {k: sum(m["counts"]["windows_dropped"].get(k, 0) for m in manifests)
                                     for k in {k for m in manifests for k in m["counts"]["windows_dropped"]}}
        skipped = [s for m in manifests for s in m.get("skipped", [])]
        return write_manifest(tmp, command="extract-pairs", inputs=manifests[0]["inputs"],
                              parameters={**params[0], "shard": [0, 1], "merged_shards": n},
                              counts=counts | {"files_skipped": len(skipped)}, skipped=skipped)
