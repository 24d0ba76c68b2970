"""``phewas run-all --config study.toml``: every stage from one file, skipping what is up to date.

Each stage's settings come from its table in the TOML file. A stage is skipped when its output
manifest exists, is the one run-all recorded when the stage finished, and the stage's fingerprint
is unchanged. The fingerprint, kept in ``WORK/run_all.json``, chains through the stages: the
stage's settings (speed-only ones such as ``workers`` left out), the toolkit's version and git
commit, and the checksum of the upstream stage's output manifest (for the first stage, the input
files' sizes and times, or the simulator's manifest). So changed inputs, a stage rerun by hand
and new code are noticed. An interrupted training stage resumes from its last checkpoint; an
interrupted extraction from its last chunk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from encoder.config import SPEED_ONLY as TRAINING_SPEED_ONLY

from .errors import InputError
from .io import file_sha256, read_toml, versions, write_json
from .settings import renamed

log = logging.getLogger("phewas")
STAGES = ("simulate", "build_cohort", "extract_segments", "pretrain", "finetune", "predict", "report")
KNOWN = {"paths", *STAGES}
# settings that change how fast a stage runs, never what it writes: not part of its fingerprint
SPEED_ONLY = {*TRAINING_SPEED_ONLY, "chunk_stays"}


def _table_keys() -> dict:
    """Each table's known keys: its config dataclass's fields plus the run-all extras."""
    from dataclasses import fields

    from cohorts import CohortConfig, SegmentConfig
    from encoder.config import FinetuneConfig, PretrainConfig
    from reports.report import ReportConfig

    from .sim import PopulationConfig

    def names(cls):
        return {f.name for f in fields(cls)}
    return {"paths": {"data", "work"}, "simulate": names(PopulationConfig) | {"workers"},
            "build_cohort": names(CohortConfig) | {"columns"},
            "extract_segments": names(SegmentConfig) | {"workers"},
            "pretrain": names(PretrainConfig), "finetune": names(FinetuneConfig),
            "predict": {"split"}, "report": names(ReportConfig) - {"split"}}


# keys of earlier versions, renamed to their flags' names (issue 14): still read, with a warning
RENAMED = {"build_cohort": {"min_ppg_s": "min_ppg_seconds", "min_overlap_s": "min_overlap_seconds"}}


def load_config(path) -> dict:
    path = Path(path)
    cfg = read_toml(path, "config")
    unknown = set(cfg) - KNOWN
    if unknown:
        raise InputError(path, f"unknown tables {sorted(unknown)}; known: {sorted(KNOWN)}")
    for table, known in _table_keys().items():
        value = cfg.get(table, {})
        if not isinstance(value, dict):
            raise InputError(path, f"[{table}] must be a table")
        if table in RENAMED:
            value = cfg[table] = renamed(value, RENAMED[table], f"{path} [{table}]")
        bad = sorted(set(value) - known)
        if bad:
            raise InputError(path, f"[{table}] unknown key {bad[0]!r}; known keys: {', '.join(sorted(known))}")
    for key in ("data", "work"):
        if key not in cfg.get("paths", {}):
            raise InputError(path, f"[paths] needs {key!r}")
    base = path.resolve().parent
    cfg["paths"] = {k: str((base / v).resolve()) if v else "" for k, v in cfg["paths"].items()}
    return cfg


def report_config(cfg: dict):
    """The ``[report]`` table, with ``[predict]``'s split, as a ``ReportConfig``."""
    from reports.report import ReportConfig
    r = dict(cfg.get("report", {}))
    if "thresholds" in r:
        r["thresholds"] = tuple(r["thresholds"])
    return ReportConfig(split=cfg.get("predict", {}).get("split", "heldout"), **r)


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _identity(path: Path):
    """What identifies an output: its manifest's checksum (None when absent)."""
    return file_sha256(path) if path.is_file() else None


def _input_identity(data: Path, columns) -> list:
    """The first stage's upstream: the input tables' (and column map's) sizes and modification
    times (checksums of hundreds of MB on every run-all would cost more than the check is
    worth), and the simulator's manifest where there is one."""
    out = [_identity(data / "manifest.json")]
    for p in [data / "visits.csv", data / "pmh.csv"] + ([Path(columns)] if columns else []):
        st = p.stat() if p.exists() else None
        out.append([str(p), st.st_size if st else None, st.st_mtime_ns if st else None])
    return out


def _code_version() -> list:
    v = versions()
    return [v.get("phewas"), (v.get("git_commit") or "").removesuffix("-dirty")]


class _State:
    def __init__(self, work: Path):
        self.path = work / "run_all.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def done(self, stage, fp, output: Path) -> bool:
        s = self.data.get(stage, {})
        return (s.get("fingerprint") == fp and s.get("finished", False)
                and s.get("output") is not None and s.get("output") == _identity(output))

    def started(self, stage, fp) -> bool:
        return self.data.get(stage, {}).get("fingerprint") == fp

    def mark(self, stage, fp, finished, seconds=None, output=None):
        self.data[stage] = {"fingerprint": fp, "finished": finished, "seconds": seconds,
                            "output": _identity(output) if output is not None else None}
        write_json(self.path, self.data)


def _simulate(data: Path, table: dict) -> dict:
    """The ``[simulate]`` stage. Never passes force: a folder holding the same simulation is
    kept, any other non-empty one is refused by ``simulate`` (it may be real MC-MED data)."""
    from dataclasses import asdict

    from .sim import PopulationConfig, simulate_dataset
    pcfg = PopulationConfig(**{k: v for k, v in table.items() if k != "workers"})
    try:
        old = json.loads((data / "manifest.json").read_text())
    except (OSError, ValueError):
        old = {}
    if old.get("command") == "simulate" and old.get("parameters") == asdict(pcfg):
        return old
    return simulate_dataset(data, pcfg, workers=table.get("workers"), overwrite=False)


def run_all(config_path, *, force: bool = False) -> dict:
    """Run the configured stages in order. Returns a summary with each stage's time and the report's."""
    from cohorts import CohortConfig, SegmentConfig, build_cohort, extract_segments
    from encoder import finetune as ft
    from encoder import pretrain as pt
    from encoder.config import finetune_config, pretrain_config
    from encoder.predict import predict
    from reports.report import make_report

    cfg = load_config(config_path)
    data, work = Path(cfg["paths"]["data"]), Path(cfg["paths"]["work"])
    work.mkdir(parents=True, exist_ok=True)
    cohort, pre_run, ft_run, report = work / "cohort", work / "pretrain", work / "finetune", work / "report"
    state = _State(work)
    if force:
        state.data = {}
    times = {}
    columns = cfg.get("build_cohort", {}).get("columns") or None
    if columns:  # relative to the config file, as [paths] are
        columns = str((Path(config_path).parent / columns).resolve())
    fp, upstream = _fingerprint("start", _code_version()), None

    def stage(name, params, fn, output: Path, resumable=False):
        """Run ``fn`` unless ``output`` (the stage's manifest) is the one recorded when the stage
        last finished with the same fingerprint."""
        nonlocal fp, upstream
        if name == "simulate":  # no inputs
            up = None
        else:
            up = _input_identity(data, columns) if upstream is None else _identity(upstream)
        fp = _fingerprint(fp, name, {k: v for k, v in params.items() if k not in SPEED_ONLY}, up)
        upstream = output
        if state.done(name, fp, output):
            log.info("%s: up to date, skipped", name)
            return None
        resume = resumable and state.started(name, fp)
        state.mark(name, fp, False)
        log.info("%s: %s", name, "resuming" if resume else "running")
        t = time.perf_counter()
        result = fn(resume)
        finished = not (isinstance(result, dict) and result.get("finished") is False)
        times[name] = round(time.perf_counter() - t, 1)
        state.mark(name, fp, finished, times[name], output if finished else None)
        return result

    if "simulate" in cfg:
        s = cfg["simulate"]
        stage("simulate", s, lambda _: _simulate(data, s), data / "manifest.json")
    b = dict(cfg.get("build_cohort", {}))
    b.pop("columns", None)
    stage("build_cohort", {**b, "columns": columns, "data": str(data)},
          lambda _: build_cohort(data, cohort, CohortConfig(**b), columns_file=columns, overwrite=True),
          cohort / "manifest.json")
    e = dict(cfg.get("extract_segments", {}))
    workers = e.pop("workers", None)
    stage("extract_segments", e,
          lambda _: extract_segments(data, cohort, SegmentConfig(**e), workers=workers, overwrite=True),
          cohort / "segments" / "manifest.json")
    p = dict(cfg.get("pretrain", {}))
    if p:
        pcfg = pretrain_config(p.pop("preset", "study"), **p)
        stage("pretrain", p | {"preset": pcfg.preset},
              lambda resume: pt.pretrain(cohort, pre_run, pcfg, resume=resume, overwrite=not resume),
              pre_run / "manifest.json", resumable=True)
    f = dict(cfg.get("finetune", {}))
    init = f.pop("init", "pretrain" if p else "")
    init = str(pre_run) if init == "pretrain" else (str((Path(config_path).parent / init).resolve()) if init else None)
    fcfg = finetune_config(f.pop("preset", "study"), init=init, **f)
    stage("finetune", f | {"preset": fcfg.preset, "init": init},
          lambda resume: ft.finetune(cohort, ft_run, fcfg, resume=resume, overwrite=not resume),
          ft_run / "manifest.json", resumable=True)
    split = cfg.get("predict", {}).get("split", "heldout")
    stage("predict", {"split": split}, lambda _: predict(ft_run, cohort, split, overwrite=True),
          ft_run / "predictions.manifest.json")
    rcfg = report_config(cfg)
    summary = stage("report", cfg.get("report", {}), lambda _: make_report(cohort, ft_run / "predictions.parquet", report, rcfg,
                                                        overwrite=True), report / "manifest.json")
    if summary is None:
        summary = json.loads((report / "summary.json").read_text())
    out = {"report": str(report / "index.html"), "seconds": times, "summary": summary}
    truth = data / "truth.json"
    if truth.exists():
        from .truth import check_recovery
        out["truth_check"] = check_recovery(report / "phenotypes.parquet", truth, alpha=rcfg.alpha)
        write_json(work / "truth_check.json", out["truth_check"])
    return out
