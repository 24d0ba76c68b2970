"""``phewas simulate``: write a synthetic dataset in MC-MED's on-disk layout."""

from __future__ import annotations

import datetime as dt
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl
import wfdb

from phewas.base.errors import OutputExistsError
from phewas.base.io import atomic_dir, write_json, write_manifest
from phewas.base.progress import progress

from .population import EPOCH, PopulationConfig, simulate_population
from .signals import ECG_FS, PPG_FS, Physiology, add_artefacts, beat_train, ecg_signal, ppg_signal

CHANNEL_DIRS = {"ppg": "Pleth", "ecg": "II"}


def _spans(plan, rng):
    """Record spans (start, end) in seconds from the visit's waveform origin, per channel."""
    total = plan["seconds"]
    ppg = [(0.0, total)]
    if rng.random() < 0.3:  # monitoring interrupted: two records with a gap
        cut = rng.uniform(0.3, 0.7) * total
        gap = rng.uniform(5, 60)
        ppg = [(0.0, cut), (cut + gap, total + gap)]
    end = ppg[-1][1]
    m = plan["modality"]
    if m == "sync":
        ecg = [(max(0.0, rng.uniform(-30, 20)), end + rng.uniform(-20, 30))]
    elif m == "partial":
        ecg = [(0.0, rng.uniform(0.25, 0.5) * end)]
    elif m == "nonoverlap":
        ecg, ppg = [(0.0, rng.uniform(60, 120))], [(s + 150.0, e + 150.0) for s, e in ppg]
    else:
        ecg = []
    return {"ppg": ppg, "ecg": ecg}


def _snap(t, ms):
    """Record starts on whole seconds (headers without milliseconds) or whole 8 ms steps."""
    return float(np.ceil(t)) if not ms else float(np.ceil(t / 0.008) * 0.008)


def _dropout(x, fs, rng):
    """A sensor that keeps dropping out: NaN except for 2-5 s of signal every 12-20 s, so no
    10-s window is valid."""
    keep = np.zeros(len(x), bool)
    t = rng.uniform(0.0, 10.0)
    while t * fs < len(x):
        keep[int(t * fs):int((t + rng.uniform(2.0, 5.0)) * fs)] = True
        t += rng.uniform(12.0, 20.0)
    return np.where(keep, x, np.nan)


def write_visit(plan, root) -> list[tuple]:
    """Generate and write one visit's records; returns waveform_summary rows."""
    rng = np.random.default_rng(plan["seed"])
    phys = Physiology(**plan["phys"])
    spans = _spans(plan, rng)
    if plan.get("unusable") == "short":  # monitoring stopped before one window's worth
        spans["ppg"] = [(spans["ppg"][0][0], spans["ppg"][0][0] + rng.uniform(3.0, 8.0))]
    spans = {k: [(_snap(s, plan["ms_headers"]), e) for s, e in v] for k, v in spans.items()}
    t_end = max(e for v in spans.values() for _, e in v) + 1
    beats, rr = beat_train(t_end, phys, rng)
    ppg = add_artefacts(ppg_signal(beats, rr, t_end, phys, rng), PPG_FS, rng)
    if plan.get("unusable") == "dropout":
        ppg = _dropout(ppg, PPG_FS, rng)
    ecg = None
    if spans["ecg"]:
        ecg = add_artefacts(ecg_signal(beats, t_end, phys, rng), ECG_FS, rng, motion_per_min=0.2,
                            clip_prob=0.01)
        if rng.random() < 0.05:  # reversed leads
            ecg = -ecg
    csn = plan["csn"]
    stay_dir = Path(root) / "waveforms" / f"{int(csn) % 1000:03d}" / csn
    rows = []
    for key, x, fs, units, gain in (("ppg", ppg, PPG_FS, "NU", 1000.0), ("ecg", ecg, ECG_FS, "mV", 2000.0)):
        if x is None:
            continue
        folder = stay_dir / CHANNEL_DIRS[key]
        folder.mkdir(parents=True, exist_ok=True)
        total = 0.0
        for k, (s, e) in enumerate(spans[key], start=1):
            a, b = int(round(s * fs)), int(round(e * fs))
            if b <= a:  # a span that short monitoring leaves empty: no record
                continue
            start = EPOCH + dt.timedelta(seconds=plan["origin"] + s)
            sig = np.clip(x[a:b], -16.0, 16.0)[:, None]
            wfdb.wrsamp(f"{csn}_{k}", fs=fs, units=[units], sig_name=[CHANNEL_DIRS[key]], p_signal=sig,
                        fmt=["16"], adc_gain=[gain], baseline=[0], base_time=start.time(),
                        base_date=start.date(), write_dir=str(folder))
            total += (b - a) / fs
        rows.append((csn, CHANNEL_DIRS[key], len(spans[key]), round(total, 3)))
    return rows


def _write_chunk(args):
    plans, root = args
    return [row for plan in plans for row in write_visit(plan, root)]


def _official_splits(visits: pl.DataFrame, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    patients = np.sort(visits["MRN"].unique().to_numpy().astype(str))
    patients = patients[rng.permutation(len(patients))]
    cut = np.cumsum([int(0.8 * len(patients)), int(0.1 * len(patients))])
    parts = dict(zip(("train", "val", "test"), np.split(patients, cut)))
    return {k: visits.filter(pl.col("MRN").is_in(list(v)))["CSN"] for k, v in parts.items()}


def check_simulation_target(out, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` that no simulation wrote, and any non-empty one without force."""
    out = Path(out)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    try:
        made_by = json.loads((out / "manifest.json").read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        made_by = None
    if made_by != "simulate":
        raise OutputExistsError(f"{out}: exists and was not written by `phewas simulate` (no simulator "
                                "manifest.json); refusing to replace it, --force or not")
    if not overwrite:
        raise OutputExistsError(f"{out}: holds an earlier simulation (pass --force to replace it)")


def simulate_dataset(out, cfg: PopulationConfig, *, workers: int | None = None,
                     overwrite: bool = False) -> dict:
    """Write ``visits.csv``, ``pmh.csv``, ``waveform_summary.csv``, the official split files,
    WFDB records under ``waveforms/``, ``truth.json`` and ``manifest.json`` to ``out``.

    A folder that holds anything but an earlier simulation (no ``manifest.json`` of ``phewas
    simulate``) is never replaced, ``overwrite`` or not: it may be real MC-MED data.
    """
    check_simulation_target(out, overwrite)
    visits, pmh, plans, truth = simulate_population(cfg)
    workers = workers or os.cpu_count() or 1
    with atomic_dir(out, overwrite=overwrite) as tmp:
        visits.write_csv(tmp / "visits.csv")
        pmh.write_csv(tmp / "pmh.csv")
        for name, csns in _official_splits(visits, cfg.seed).items():
            (tmp / f"split_random_{name}.csv").write_text("".join(f"{c}\n" for c in csns))
        chunks = [(plans[i:i + 16], str(tmp)) for i in range(0, len(plans), 16)]
        rows = []
        bar = progress(total=len(plans), desc="simulate waveforms", unit="visit")
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for (chunk, _), r in zip(chunks, pool.map(_write_chunk, chunks)):
                    rows += r
                    bar.update(len(chunk))
        else:
            for chunk in chunks:
                rows += _write_chunk(chunk)
                bar.update(len(chunk[0]))
        bar.close()
        pl.DataFrame(rows, schema=["CSN", "Type", "Segments", "Duration"], orient="row").write_csv(
            tmp / "waveform_summary.csv")
        write_json(tmp / "truth.json", truth)
        manifest = write_manifest(tmp, command="simulate", inputs={}, parameters=asdict(cfg),
                                  counts={"patients": cfg.patients, "visits": visits.height,
                                          "history_rows": pmh.height, "visits_with_waveforms": len(plans),
                                          "records": sum(r[2] for r in rows)})
    return manifest
