"""``phewas run-all --config study.toml``: every stage from one file, skipping what is up to date.

Each stage's settings come from its table in the TOML file. A stage is skipped when its output
manifest exists, is the one run-all recorded when the stage finished, and the stage's fingerprint
is unchanged. The fingerprint, kept in ``WORK/run_all.json``, chains through the stages: the
stage's settings (speed-only ones such as ``workers`` left out), the toolkit's version and git
commit, and the checksum of the upstream stage's output manifest (for the first stage, the input
files' sizes and times, or the simulator's manifest). So changed inputs, a stage rerun by hand
and new code are noticed. An interrupted training stage resumes from its last checkpoint; an
interrupted extraction from its last chunk.

More models on the same cohort: each ``[models.NAME]`` table is a model, fine-tuned with
``[finetune]``'s settings and the table's changes (``kind = "finetune"``, the default; for
example ``init = ""`` for one trained from scratch, or ``init = "anyppg.pth"``), or the
pulse-feature baseline (``kind = "features"``). Each is trained and predicted in
``WORK/models/NAME/`` and reported in ``WORK/reports/NAME/``, and ``compare`` (settings in
``[compare]``) ends the run over the main model (named ``finetune``) and every other. A model's
stages depend on the segment store (and the pretraining run, where it starts from it), not on the
other models. A ``[probe]`` table probes the pretraining run and random weights on a labelled PPG
dataset after pretraining (``WORK/probe/``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, fields
from pathlib import Path

from encoder.config import SPEED_ONLY as TRAINING_SPEED_ONLY

from .errors import InputError, OutputExistsError
from .io import file_sha256, read_toml, versions, write_json
from .settings import renamed

log = logging.getLogger("phewas")
STAGES = ("simulate", "build_cohort", "extract_segments", "pretrain", "finetune", "predict", "report")
KNOWN = {"paths", *STAGES, "models", "compare", "probe"}
MAIN_MODEL = "finetune"  # the main model's name in compare
MODEL_KINDS = ("finetune", "features")
# settings that change how fast a stage runs, never what it writes: not part of its fingerprint
SPEED_ONLY = {*TRAINING_SPEED_ONLY, "chunk_stays"}


def _table_keys() -> dict:
    """Each table's known keys: its config dataclass's fields plus the run-all extras."""
    from cohorts import CohortConfig, SegmentConfig
    from encoder.config import FinetuneConfig, PretrainConfig
    from reports.compare import CompareConfig
    from reports.probe import ProbeConfig
    from reports.report import ReportConfig

    from .sim import PopulationConfig

    def names(cls):
        return {f.name for f in fields(cls)}
    return {"paths": {"data", "work"}, "simulate": names(PopulationConfig) | {"workers"},
            "build_cohort": names(CohortConfig) | {"columns"},
            "extract_segments": names(SegmentConfig) | {"workers"},
            "pretrain": names(PretrainConfig), "finetune": names(FinetuneConfig),
            "predict": {"split"}, "report": names(ReportConfig) - {"split"},
            "compare": names(CompareConfig) - {"split"},
            "probe": names(ProbeConfig) | {"dataset", "encoders"}}


def _model_keys(kind: str) -> set:
    from encoder.baseline import FeaturesConfig
    from encoder.config import FinetuneConfig
    if kind == "features":
        return {f.name for f in fields(FeaturesConfig)} - {"split"} | {"kind"}
    return {f.name for f in fields(FinetuneConfig)} | {"kind", "preset", "init"}


def _check_models(path: Path, models) -> None:
    from reports.compare import NAME
    if not isinstance(models, dict):
        raise InputError(path, "[models] must hold tables, [models.NAME]")
    for name, table in models.items():
        where = f"[models.{name}]"
        if not isinstance(table, dict):
            raise InputError(path, f"{where} must be a table")
        if not NAME.match(name) or name == MAIN_MODEL:
            raise InputError(path, f"{where}: a model name is letters, digits, _ . + - and not {MAIN_MODEL!r}")
        kind = table.get("kind", "finetune")
        if kind not in MODEL_KINDS:
            raise InputError(path, f"{where} kind {kind!r}: one of {', '.join(MODEL_KINDS)}")
        bad = sorted(set(table) - _model_keys(kind))
        if bad:
            raise InputError(path, f"{where} unknown key {bad[0]!r} for kind {kind!r}; known keys: "
                             f"{', '.join(sorted(_model_keys(kind)))}")


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
    _check_models(path, cfg.get("models", {}))
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
    from .sim import PopulationConfig, simulate_dataset
    pcfg = PopulationConfig(**{k: v for k, v in table.items() if k != "workers"})
    try:
        old = json.loads((data / "manifest.json").read_text())
    except (OSError, ValueError):
        old = {}
    if old.get("command") == "simulate" and same_simulation(old.get("parameters") or {}, pcfg):
        return old
    if old.get("command") == "simulate":  # run-all never replaces a data folder, --force or not
        raise OutputExistsError(f"{data}: holds another simulation than [simulate] asks for; run-all "
                                "never replaces a data folder: delete it, or point [paths] data elsewhere")
    # anything else non-empty (perhaps real MC-MED data) is refused by simulate itself
    return simulate_dataset(data, pcfg, workers=table.get("workers"), overwrite=False)


def same_simulation(old: dict, cfg) -> bool:
    """Whether a simulator manifest's parameters describe the simulation ``cfg`` asks for. A
    setting that the older manifest lacks matches at its default: settings are added with
    defaults that keep the simulator's output unchanged (issue 12's ``hard`` and its knobs)."""
    from dataclasses import MISSING

    new = asdict(cfg)
    if set(old) - set(new):  # a setting that no longer exists: another simulator
        return False
    defaults = {f.name: f.default for f in fields(cfg) if f.default is not MISSING}
    return all(old[k] == v if k in old else (k in defaults and v == defaults[k]) for k, v in new.items())


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
    start = _fingerprint("start", _code_version())
    fps, outputs, order = {}, {}, []

    def stage(name, params, fn, output: Path, resumable=False, after=None):
        """Run ``fn`` unless ``output`` (the stage's manifest) is the one recorded when the stage
        last finished with the same fingerprint. ``after``: the stages whose outputs it reads
        (default: the stage before it); their fingerprints and outputs enter its own."""
        deps = (order[-1:] if after is None else list(after))
        if deps:
            up = [_identity(outputs[d]) for d in deps]
        else:  # the first stage reads the inputs; simulate reads nothing
            up = None if name == "simulate" else _input_identity(data, columns)
        fp = _fingerprint(*[fps[d] for d in deps] or [start], name,
                          {k: v for k, v in params.items() if k not in SPEED_ONLY}, up)
        fps[name], outputs[name] = fp, output
        order.append(name)
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
    pretrains = "pretrain" in cfg  # (a [pretrain] table holding only `preset` pretrains too)
    if pretrains:
        pcfg = pretrain_config(p.pop("preset", "study"), **p)
        stage("pretrain", p | {"preset": pcfg.preset},
              lambda resume: pt.pretrain(cohort, pre_run, pcfg, resume=resume, overwrite=not resume),
              pre_run / "manifest.json", resumable=True)

    if "probe" in cfg:  # the pretraining run (and the random floor) probed before fine-tuning
        probe_stage(cfg, Path(config_path), stage, pre_run if pretrains else None, work / "probe")

    def resolve_init(init):
        if init == "pretrain":
            return str(pre_run)
        return str((Path(config_path).parent / init).resolve()) if init else None

    def finetune_stages(suffix, table, run, report_dir):
        """finetune, predict and report of one fine-tuned model; returns its report's summary and
        its settings."""
        f = dict(table)
        init = resolve_init(f.pop("init", "pretrain" if pretrains else ""))
        fcfg = finetune_config(f.pop("preset", "study"), init=init, **f)
        after = ["extract_segments"] + (["pretrain"] if init == str(pre_run) else [])
        stage("finetune" + suffix, f | {"preset": fcfg.preset, "init": init},
              lambda resume: ft.finetune(cohort, run, fcfg, resume=resume, overwrite=not resume),
              run / "manifest.json", resumable=True, after=after)
        stage("predict" + suffix, {"split": split}, lambda _: predict(run, cohort, split, overwrite=True),
              run / "predictions.manifest.json")
        return report_stage(suffix, run, report_dir), fcfg

    def report_stage(suffix, run, report_dir):
        summary = stage("report" + suffix, cfg.get("report", {}),
                        lambda _: make_report(cohort, run / "predictions.parquet", report_dir, rcfg, overwrite=True),
                        report_dir / "manifest.json")
        return summary if summary is not None else json.loads((report_dir / "summary.json").read_text())

    split = cfg.get("predict", {}).get("split", "heldout")
    rcfg = report_config(cfg)
    summary, main_cfg = finetune_stages("", cfg.get("finetune", {}), ft_run, report)
    runs = {MAIN_MODEL: ft_run}
    producers = ["predict"]
    reports = {MAIN_MODEL: report}
    models_out = {}
    for name, table in cfg.get("models", {}).items():
        table = dict(table)
        kind = table.pop("kind", "finetune")
        run = work / "models" / name
        reports[name] = work / "reports" / name
        if kind == "features":  # the main model's targets unless told otherwise
            table.setdefault("min_train_positives", main_cfg.min_train_positives)
            models_out[name] = features_stages(name, table, run, stage, cohort, split, rcfg, report_stage)
        else:
            models_out[name] = finetune_stages(f":{name}", cfg.get("finetune", {}) | table, run, reports[name])[0]
        runs[name] = run
        producers.append(order[-2])  # the stage that wrote the model's predictions
    out = {"report": str(report / "index.html"), "seconds": times, "summary": summary}
    if len(runs) > 1:
        from reports.compare import compare
        ccfg = compare_config(cfg)
        names = list(runs)
        stage("compare", asdict(ccfg) | {"models": names},
              lambda _: compare(cohort, [runs[n] / "predictions.parquet" for n in names], work / "compare", names,
                                ccfg, overwrite=True),
              work / "compare" / "manifest.json", after=producers)
        out["compare"] = json.loads((work / "compare" / "summary.json").read_text())["pairs"]
        out["models"] = models_out
    truth = data / "truth.json"
    version = json.loads((cohort / "manifest.json").read_text())["parameters"].get("phecodes", "1.2")
    if truth.exists() and version != "1.2":  # the simulator's truth names phecode 1.2 codes
        log.info("truth.json names phecode 1.2 codes; this cohort uses phecode %s: no truth check", version)
    elif truth.exists():
        from .truth import check_recovery
        out["truth_check"] = check_recovery(report / "phenotypes.parquet", truth, alpha=rcfg.alpha)
        write_json(work / "truth_check.json", out["truth_check"])
        for name in runs:
            if name != MAIN_MODEL:
                check = check_recovery(reports[name] / "phenotypes.parquet", truth, alpha=rcfg.alpha)
                write_json(runs[name] / "truth_check.json", check)
                out.setdefault("model_truth_checks", {})[name] = check
    return out


def probe_stage(cfg: dict, config_path: Path, stage, pre_run, out: Path) -> None:
    """``[probe]``: ``dataset`` (a folder in the probe format, relative to the config), optional
    ``encoders`` (more encoders: paths relative to the config, or "random"), and ``probe``'s
    settings. Probes the pretraining run and ``random``."""
    from reports.probe import ProbeConfig, probe
    table = dict(cfg["probe"])
    if "dataset" not in table:
        raise InputError(config_path, "[probe] needs 'dataset', a folder in the probe format")
    base = config_path.resolve().parent
    dataset = (base / table.pop("dataset")).resolve()
    extra = [e if e == "random" else str((base / e).resolve()) for e in table.pop("encoders", [])]
    encoders = ([str(pre_run)] if pre_run is not None else []) + ["random"] + [e for e in extra if e != "random"]
    pcfg = ProbeConfig(**table)
    labels = dataset / "labels.csv"
    st = labels.stat() if labels.exists() else None
    stage("probe", asdict(pcfg) | {"dataset": str(dataset), "encoders": encoders,
                                   "labels": [st.st_size, st.st_mtime_ns] if st else None},
          lambda _: probe(dataset, encoders, out, config=pcfg, overwrite=True), out / "manifest.json",
          after=["pretrain"] if pre_run is not None else ["extract_segments"])


def compare_config(cfg: dict):
    """The ``[compare]`` table as a ``CompareConfig``; ``min_positives`` and the window rule
    default to ``[report]``'s, the split is ``[predict]``'s."""
    from reports.compare import CompareConfig
    r = cfg.get("report", {})
    defaults = {k: r[k] for k in ("min_positives", "include_stays_without_windows", "alpha") if k in r}
    return CompareConfig(split=cfg.get("predict", {}).get("split", "heldout"), **(defaults | cfg.get("compare", {})))


def features_stages(name, table, run, stage, cohort, split, rcfg, report_stage):
    """The pulse-feature baseline as a model: ``features:NAME`` (with its heart-rate-only report)
    and ``report:NAME``. Returns its report's summary."""
    from encoder.baseline import FeaturesConfig, pulse_baseline
    from reports.report import heart_rate_report
    fcfg = FeaturesConfig(split=split, **table)

    def fn(_):
        m = pulse_baseline(cohort, run, fcfg, overwrite=True)
        heart_rate_report(cohort, run, split, rcfg.min_positives)
        return m
    stage(f"features:{name}", table | {"split": split, "heart_rate_min_positives": rcfg.min_positives}, fn,
          run / "manifest.json", after=["extract_segments"])
    return report_stage(f":{name}", run, run.parent.parent / "reports" / name)
