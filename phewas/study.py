"""``phewas run-all --config study.toml``: every stage from one file, skipping what is up to date.

Each stage's settings come from its table in the TOML file; :func:`plan` turns the file into a
list of :class:`~phewas.pipeline.Stage` records, and :func:`~phewas.pipeline.execute` runs them
(fingerprints, skipping, resuming: see :mod:`phewas.pipeline`). An interrupted training stage
resumes from its last checkpoint; an interrupted extraction from its last chunk.

More models on the same cohort: each ``[models.NAME]`` table is a model, fine-tuned with
``[finetune]``'s settings and the table's changes (``kind = "finetune"``, the default; for
example ``init = ""`` for one trained from scratch, or ``init = "anyppg.pth"``), or the
pulse-feature baseline (``kind = "features"``). Each is trained and predicted in
``WORK/models/NAME/`` and reported in ``WORK/reports/NAME/``, and ``compare`` (settings in
``[compare]``) ends the run over the main model (named ``finetune``) and every other. A model's
stages depend on the segment store (and the pretraining run, where it starts from it), not on the
other models. A ``[probe]`` table probes the pretraining run and random weights on a labelled PPG
dataset after pretraining (``WORK/probe/``). Each ``[pairs.NAME]`` table converts a pretraining
source (``format``, ``source``: PulseDB, MESA, CFS or HSP as published) into a pair store in
``WORK/pairs/NAME/``, and pretraining trains on them with the cohort's pairs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import partial
from pathlib import Path

from encoder.config import SPEED_ONLY as TRAINING_SPEED_ONLY

from .base.errors import InputError, OutputExistsError
from .base.io import read_toml, write_json
from .base.settings import renamed, table_keys
from .pipeline import RunRecord, Stage, execute

log = logging.getLogger("phewas")
MAIN_MODEL = "finetune"  # the main model's name in compare
# settings that change how fast a stage runs, never what it writes: not part of its fingerprint
# the device is not among them: a GPU computes in bf16 where a CPU computes in fp32
SPEED_ONLY = {*TRAINING_SPEED_ONLY, "chunk_stays", "cache"} - {"device"}
# keys of earlier versions, renamed to their flags' names: still read, with a warning
RENAMED = {"build_cohort": {"min_ppg_s": "min_ppg_seconds", "min_overlap_s": "min_overlap_seconds"}}


@dataclass(frozen=True)
class Paths:
    """``[paths]``: the MC-MED folder (``data``) and the folder every stage writes under (``work``),
    relative to the config file."""

    data: str
    work: str


def _table_keys() -> dict:
    """Each table's keys: the fields of its command's settings (:mod:`phewas.command_settings`)."""
    from .command_settings import command_settings
    keys = {"paths": {f.name for f in fields(Paths)}}
    for settings in command_settings().values():
        if settings.table not in (None, "pairs", "models"):
            keys[settings.table] = table_keys(settings.table, *settings.classes)
    return keys


def _model_keys(kind: str) -> set:
    """A ``[models.NAME]`` table's keys: ``kind`` and its command's settings."""
    from .command_settings import command_settings
    return {"kind"} | table_keys("models", *command_settings()[kind].classes)


def _named_tables(path: Path, tables, section: str, noun: str, reserved: str | None = None):
    """``(name, table, "[section.name]")`` of a table of tables such as ``[models.NAME]``, each
    checked to be a table with a plain name (not ``reserved``)."""
    from reports.compare import NAME
    if not isinstance(tables, dict):
        raise InputError(path, f"[{section}] must hold tables, [{section}.NAME]")
    for name, table in tables.items():
        where = f"[{section}.{name}]"
        if not isinstance(table, dict):
            raise InputError(path, f"{where} must be a table")
        if not NAME.match(name) or name == reserved:
            raise InputError(path, f"{where}: a {noun} name is letters, digits, _ . + -"
                             + (f" and not {reserved!r}" if reserved else ""))
        yield name, table, where


def _check_models(path: Path, models) -> None:
    from .command_settings import MODEL_KINDS
    for _, table, where in _named_tables(path, models, "models", "model", MAIN_MODEL):
        kind = table.get("kind", "finetune")
        if kind not in MODEL_KINDS:
            raise InputError(path, f"{where} kind {kind!r}: one of {', '.join(MODEL_KINDS)}")
        bad = sorted(set(table) - _model_keys(kind))
        if bad:
            raise InputError(path, f"{where} unknown key {bad[0]!r} for kind {kind!r}; known keys: "
                             f"{', '.join(sorted(_model_keys(kind)))}")


def _pair_keys() -> set:
    from .command_settings import command_settings
    return table_keys("pairs", *command_settings()["extract-pairs"].classes)


def _check_pairs(path: Path, pairs) -> None:
    from cohorts.corpus import FORMATS
    for _, table, where in _named_tables(path, pairs, "pairs", "source"):
        bad = sorted(set(table) - _pair_keys())
        if bad:
            raise InputError(path, f"{where} unknown key {bad[0]!r}; known keys: {', '.join(sorted(_pair_keys()))}")
        for key in ("format", "source"):
            if key not in table:
                raise InputError(path, f"{where} needs {key!r}")
        if table["format"] not in FORMATS:
            raise InputError(path, f"{where} format {table['format']!r}: one of {', '.join(FORMATS)}")


def load_config(path) -> dict:
    """The TOML file, checked: known tables and keys, old keys renamed, paths made absolute."""
    path = Path(path)
    cfg = read_toml(path, "config")
    keys = _table_keys()
    known = {*keys, "models", "pairs"}  # and the tables of tables, [models.NAME] and [pairs.NAME]
    unknown = set(cfg) - known
    if unknown:
        raise InputError(path, f"unknown tables {sorted(unknown)}; known: {sorted(known)}")
    for table, allowed in keys.items():
        value = cfg.get(table, {})
        if not isinstance(value, dict):
            raise InputError(path, f"[{table}] must be a table")
        if table in RENAMED:
            value = cfg[table] = renamed(value, RENAMED[table], f"{path} [{table}]")
        bad = sorted(set(value) - allowed)
        if bad:
            raise InputError(path, f"[{table}] unknown key {bad[0]!r}; known keys: {', '.join(sorted(allowed))}")
    _check_models(path, cfg.get("models", {}))
    _check_pairs(path, cfg.get("pairs", {}))
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


def compare_config(cfg: dict):
    """The ``[compare]`` table as a ``CompareConfig``; ``min_positives`` and the window rule
    default to ``[report]``'s, the split is ``[predict]``'s."""
    from reports.compare import CompareConfig
    r = cfg.get("report", {})
    defaults = {k: r[k] for k in ("min_positives", "include_stays_without_windows", "alpha") if k in r}
    return CompareConfig(split=cfg.get("predict", {}).get("split", "heldout"), **(defaults | cfg.get("compare", {})))


def _input_identity(data: Path, columns) -> list:
    """The first stage's upstream: the input tables' (and column map's) sizes and modification
    times (checksums of hundreds of MB on every run-all would cost more than the check is
    worth), and the simulator's manifest where there is one."""
    from .pipeline import output_identity
    out = [output_identity(data / "manifest.json")]
    for p in [data / "visits.csv", data / "pmh.csv"] + ([Path(columns)] if columns else []):
        st = p.stat() if p.exists() else None
        out.append([str(p), st.st_size if st else None, st.st_mtime_ns if st else None])
    return out


def _simulate(data: Path, table: dict) -> dict:
    """The ``[simulate]`` stage. Never passes force: a folder holding the same simulation is
    kept, any other non-empty one is refused by ``simulate`` (it may be real MC-MED data)."""
    from cohorts.sim import PopulationConfig, simulate_dataset
    population = PopulationConfig(**{k: v for k, v in table.items() if k != "workers"})
    try:
        old = json.loads((data / "manifest.json").read_text())
    except (OSError, ValueError):
        old = {}
    if old.get("command") == "simulate" and same_simulation(old.get("parameters") or {}, population):
        return old
    if old.get("command") == "simulate":  # run-all never replaces a data folder, --force or not
        raise OutputExistsError(f"{data}: holds another simulation than [simulate] asks for; run-all "
                                "never replaces a data folder: delete it, or point [paths] data elsewhere")
    # anything else non-empty (perhaps real MC-MED data) is refused by simulate itself
    return simulate_dataset(data, population, workers=table.get("workers"), overwrite=False)


def same_simulation(old: dict, cfg) -> bool:
    """Whether a simulator manifest's parameters describe the simulation ``cfg`` asks for. A
    setting that the older manifest lacks matches at its default: settings are added with
    defaults that keep the simulator's output unchanged."""
    new = asdict(cfg)
    if set(old) - set(new):  # a setting that no longer exists: another simulator
        return False
    defaults = {f.name: f.default for f in fields(cfg) if f.default is not MISSING}
    return all(old[k] == v if k in old else (k in defaults and v == defaults[k]) for k, v in new.items())


# How a stage runs: a command called with fixed arguments. Training stages resume when the
# pipeline says so, and otherwise replace what is there.

def _call(fn, args: tuple, kwargs: dict, resume: bool):
    return fn(*args, **kwargs)


def _train(fn, cohort: Path, run: Path, cfg, resume: bool):
    return fn(cohort, run, cfg, resume=resume, overwrite=not resume)


def _pretrain(fn, cohort: Path, run: Path, cfg, pairs: list, resume: bool):
    return fn(cohort, run, cfg, resume=resume, overwrite=not resume, pairs=pairs)


def calls(fn, *args, **kwargs):
    """``run(resume)`` of a stage that never resumes: ``fn(*args, **kwargs)``."""
    return partial(_call, fn, args, kwargs)


@dataclass
class Model:
    """A model of the study: where its run and report live and which stage writes its predictions."""

    name: str
    run: Path
    report: Path
    predictions_stage: str


@dataclass
class Plan:
    stages: list[Stage]
    models: list[Model]
    work: Path
    data: Path


def stage_name(kind: str, model: str = MAIN_MODEL) -> str:
    """``predict`` for the main model, ``predict:NAME`` for another."""
    return kind if model == MAIN_MODEL else f"{kind}:{model}"


def plan(cfg: dict, config_path: Path) -> Plan:
    """The stages that ``cfg`` (from :func:`load_config`) asks for, in order."""
    from cohorts import CohortConfig, SegmentConfig, build_cohort, extract_segments
    from encoder.config import pretrain_config

    config_path = Path(config_path)
    base = config_path.resolve().parent
    data, work = Path(cfg["paths"]["data"]), Path(cfg["paths"]["work"])
    cohort, pretrain_run = work / "cohort", work / "pretrain"
    columns = cfg.get("build_cohort", {}).get("columns") or None
    if columns:  # relative to the config file, as [paths] are
        columns = str((base / columns).resolve())
    stages: list[Stage] = []
    if "simulate" in cfg:
        table = cfg["simulate"]
        stages.append(Stage("simulate", data / "manifest.json", calls(_simulate, data, table), params=table))
    cohort_table = {k: v for k, v in cfg.get("build_cohort", {}).items() if k != "columns"}
    stages.append(Stage("build_cohort", cohort / "manifest.json",
                        calls(build_cohort, data, cohort, CohortConfig(**cohort_table), columns_file=columns,
                              overwrite=True),
                        params={**cohort_table, "columns": columns, "data": str(data)},
                        reads=("simulate",) if "simulate" in cfg else (),
                        external=partial(_input_identity, data, columns)))
    segment_table = dict(cfg.get("extract_segments", {}))
    workers = segment_table.pop("workers", None)
    stages.append(Stage("extract_segments", cohort / "segments" / "manifest.json",
                        calls(extract_segments, data, cohort, SegmentConfig(**segment_table), workers=workers,
                              overwrite=True),
                        params=segment_table, reads=("build_cohort",)))
    pair_stages = [pairs_stage(name, table, base, work / "pairs" / name)
                   for name, table in cfg.get("pairs", {}).items()]
    stages += pair_stages
    pretrains = "pretrain" in cfg  # (a [pretrain] table holding only `preset` pretrains too)
    if pretrains:
        table = dict(cfg["pretrain"])
        pretrain_cfg = pretrain_config(table.pop("preset", "study"), **table)
        from encoder.pretrain import pretrain
        pair_stores = [st.writes.parent for st in pair_stages]
        stages.append(Stage("pretrain", pretrain_run / "manifest.json",
                            partial(_pretrain, pretrain, cohort, pretrain_run, pretrain_cfg, pair_stores),
                            params=table | {"preset": pretrain_cfg.preset, "pairs": [str(p) for p in pair_stores]},
                            reads=("extract_segments", *(st.name for st in pair_stages)), resumable=True))
    if "probe" in cfg:  # the pretraining run (and the random floor) probed before fine-tuning
        stages.append(probe_stage(cfg["probe"], config_path, pretrain_run if pretrains else None, work / "probe"))

    predict_table = {"split": "heldout"} | cfg.get("predict", {})
    split = predict_table["split"]
    report_table, report_cfg = cfg.get("report", {}), report_config(cfg)
    default_init = "pretrain" if pretrains else ""
    finetune_table = cfg.get("finetune", {})
    main = Model(MAIN_MODEL, work / "finetune", work / "report", "predict")
    main_finetune = FinetuneModel.of(finetune_table, default_init, pretrain_run, base)
    stages += finetune_stages(main, main_finetune, cohort, predict_table, report_table, report_cfg)
    models = [main]
    for name, table in cfg.get("models", {}).items():
        table = dict(table)
        kind = table.pop("kind", "finetune")
        run, report_dir = work / "models" / name, work / "reports" / name
        if kind == "features":  # the main model's targets unless told otherwise
            table.setdefault("min_train_positives", main_finetune.config.min_train_positives)
            model = Model(name, run, report_dir, stage_name("features", name))
            stages += features_stages(model, table, cohort, split, report_table, report_cfg)
        else:
            model = Model(name, run, report_dir, stage_name("predict", name))
            stages += finetune_stages(model, FinetuneModel.of(finetune_table | table, default_init, pretrain_run, base),
                                      cohort, predict_table, report_table, report_cfg)
        models.append(model)
    if len(models) > 1:
        from reports.compare import compare
        compare_cfg = compare_config(cfg)
        names = [m.name for m in models]
        stages.append(Stage("compare", work / "compare" / "manifest.json",
                            calls(compare, cohort, [m.run / "predictions.parquet" for m in models], work / "compare",
                                  names, compare_cfg, overwrite=True),
                            params=asdict(compare_cfg) | {"models": names},
                            reads=tuple(m.predictions_stage for m in models)))
    return Plan(stages, models, work, data)


@dataclass
class FinetuneModel:
    """A fine-tuned model's settings (a ``[finetune]`` table, changed by a ``[models.NAME]`` one),
    its fingerprint parameters and the stages its fine-tuning reads."""

    config: object
    params: dict
    reads: tuple[str, ...]

    @classmethod
    def of(cls, table: dict, default_init: str, pretrain_run: Path, base: Path) -> FinetuneModel:
        """``init``: "pretrain" (the pretraining run), "" (random weights) or an encoder spec whose
        file is relative to the config (``base``)."""
        from encoder.config import finetune_config
        table = dict(table)
        init = table.pop("init", default_init)
        init_path = str(pretrain_run) if init == "pretrain" else (encoder_spec(init, base) if init else None)
        config = finetune_config(table.pop("preset", "study"), init=init_path, **table)
        reads = ("extract_segments", "pretrain") if init == "pretrain" else ("extract_segments",)
        return cls(config, table | {"preset": config.preset, "init": init_path}, reads)


def finetune_stages(model: Model, finetuned: FinetuneModel, cohort: Path, predict_table: dict, report_table: dict,
                    report_cfg) -> list[Stage]:
    """finetune, predict (``[predict]``'s settings) and report of one fine-tuned model."""
    from encoder.config import PredictConfig
    from encoder.finetune import finetune
    from encoder.predict import predict

    return [
        Stage(stage_name("finetune", model.name), model.run / "manifest.json",
              partial(_train, finetune, cohort, model.run, finetuned.config), params=finetuned.params,
              reads=finetuned.reads, resumable=True),
        Stage(model.predictions_stage, model.run / "predictions.manifest.json",
              calls(predict, cohort, model.run, PredictConfig(**predict_table), overwrite=True),
              params={k: v for k, v in predict_table.items() if k not in SPEED_ONLY},
              reads=(stage_name("finetune", model.name),)),
        report_stage(model, cohort, report_table, report_cfg),
    ]


def features_stages(model: Model, table: dict, cohort: Path, split: str, report_table: dict,
                    report_cfg) -> list[Stage]:
    """The pulse-feature baseline as a model: ``features:NAME`` (with its heart-rate-only report)
    and ``report:NAME``."""
    from encoder.baseline import FeaturesConfig

    from .commands import features
    features_cfg = FeaturesConfig(split=split, min_positives=report_cfg.min_positives, **table)
    return [
        Stage(model.predictions_stage, model.run / "manifest.json",
              calls(features, cohort, model.run, features_cfg, overwrite=True),
              params=table | {"split": split, "heart_rate_min_positives": report_cfg.min_positives},
              reads=("extract_segments",)),
        report_stage(model, cohort, report_table, report_cfg),
    ]


def report_stage(model: Model, cohort: Path, report_table: dict, report_cfg) -> Stage:
    """``report`` of a model's predictions."""
    from reports.report import make_report
    return Stage(stage_name("report", model.name), model.report / "manifest.json",
                 calls(make_report, cohort, model.run / "predictions.parquet", model.report, report_cfg,
                       overwrite=True),
                 params=report_table, reads=(model.predictions_stage,))


def _source_identity(source: Path) -> list:
    """A pretraining source's files, sizes and modification times: a changed source reruns."""
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else []
    return [[str(p.relative_to(source)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def pairs_stage(name: str, table: dict, base: Path, out: Path) -> Stage:
    """``[pairs.NAME]``: ``format``, ``source`` (relative to the config), ``workers``, ``strict`` and
    ``extract-pairs``' settings; the pair store is written to ``WORK/pairs/NAME`` and pretraining
    reads it with the cohort's pairs."""
    from cohorts.corpus import PairsConfig, extract_pairs
    table = dict(table)
    fmt, source = table.pop("format"), (base / table.pop("source")).resolve()
    workers, strict = table.pop("workers", None), table.pop("strict", False)
    cfg = PairsConfig(**table)
    return Stage(f"pairs:{name}", out / "manifest.json",
                 calls(extract_pairs, fmt, source, out, cfg, workers=workers, overwrite=True, strict=strict),
                 params=asdict(cfg) | {"format": fmt, "source": str(source), "strict": strict},
                 external=partial(_source_identity, source))


def encoder_spec(spec: str, base: Path) -> str:
    """An encoder spec (:mod:`encoder.specs`) named in the TOML, with its file or folder made
    absolute (relative to the config): "random", "features" and "random:FAMILY" as they are,
    "FAMILY:FILE", "moment:DIR" and "chronos:DIR" with the path resolved, anything else a path.
    An unknown prefix is an error naming the config."""
    from encoder.specs import parse_spec
    try:
        parsed = parse_spec(spec)
    except ValueError as err:
        raise InputError(base, f"encoder {spec!r}: {err}") from None
    if parsed.kind in ("random", "features"):
        return spec
    if parsed.kind in ("tsfm", "family"):
        return f"{parsed.family}:{(base / parsed.path).resolve()}"
    return str((base / spec).resolve())


def probe_stage(table: dict, config_path: Path, pretrain_run: Path | None, out: Path) -> Stage:
    """``[probe]``: ``dataset`` (a folder in the probe format, relative to the config), optional
    ``encoders`` (more encoders: a list of :func:`encoder_spec`, or a table ``NAME = spec`` that
    names each, e.g. ``papagei_s = "weights/papagei_s.pt"``), and ``probe``'s settings. Probes the
    pretraining run ("pretrain") and ``random`` too."""
    from reports.probe import ProbeConfig, probe
    table = dict(table)
    if "dataset" not in table:
        raise InputError(config_path, "[probe] needs 'dataset', a folder in the probe format")
    base = config_path.resolve().parent
    dataset = (base / table.pop("dataset")).resolve()
    given = table.pop("encoders", [])
    pairs = list(given.items()) if isinstance(given, dict) else [(None, e) for e in given]
    pairs = [(n, encoder_spec(str(e), base)) for n, e in pairs if e != "random"]
    firsts = ([("pretrain", str(pretrain_run))] if pretrain_run is not None else []) + [("random", "random")]
    encoders = [e for _, e in firsts] + [e for _, e in pairs]
    names = None
    if isinstance(given, dict):  # names from the table; the defaults keep theirs
        names = [n for n, _ in firsts] + [n for n, _ in pairs]
    probe_cfg = ProbeConfig(**table)
    labels = dataset / "labels.csv"
    st = labels.stat() if labels.exists() else None
    return Stage("probe", out / "manifest.json", calls(probe, dataset, encoders, out, names=names, config=probe_cfg,
                                                       overwrite=True),
                 params=asdict(probe_cfg) | {"dataset": str(dataset), "encoders": encoders, "names": names,
                                             "labels": [st.st_size, st.st_mtime_ns] if st else None},
                 reads=("pretrain",) if pretrain_run is not None else ("extract_segments",))


@dataclass
class RunAllResult:
    """What ``run-all`` did and found: each run stage's seconds, the main report's summary and page,
    the simulator's truth checks (simulated data only), and compare's pairs and page."""

    seconds: dict
    summary: dict
    report: Path
    truth_check: dict | None = None
    model_truth_checks: dict = field(default_factory=dict)
    compare: list | None = None
    compare_page: Path | None = None


def run_all(config_path, *, force: bool = False) -> RunAllResult:
    """Run the configured stages in order, skipping what is up to date (``force``: nothing is)."""
    cfg = load_config(config_path)
    the_plan = plan(cfg, Path(config_path))
    the_plan.work.mkdir(parents=True, exist_ok=True)
    done = execute(the_plan.stages, RunRecord(the_plan.work, fresh=force), SPEED_ONLY)
    main = the_plan.models[0]
    result = RunAllResult(seconds=done.seconds, summary=json.loads((main.report / "summary.json").read_text()),
                          report=main.report / "index.html")
    if len(the_plan.models) > 1:
        result.compare = json.loads((the_plan.work / "compare" / "summary.json").read_text())["pairs"]
        result.compare_page = the_plan.work / "compare" / "index.html"
    truth_checks(result, the_plan, report_config(cfg).alpha)
    return result


def truth_checks(result: RunAllResult, the_plan: Plan, alpha: float) -> None:
    """Where the data is a simulation with ``truth.json``: does each model's report find what was
    put in? Written to ``WORK/truth_check.json`` (the main model) and ``RUN/truth_check.json``."""
    truth = the_plan.data / "truth.json"
    if not truth.exists():
        return
    cohort = the_plan.work / "cohort"
    version = json.loads((cohort / "manifest.json").read_text())["parameters"].get("phecodes", "1.2")
    if version != "1.2":  # the simulator's truth names phecode 1.2 codes
        log.info("truth.json names phecode 1.2 codes; this cohort uses phecode %s: no truth check", version)
        return
    from reports.truth import check_recovery
    for model in the_plan.models:
        check = check_recovery(model.report / "phenotypes.parquet", truth, alpha=alpha)
        if model.name == MAIN_MODEL:
            result.truth_check = check
            write_json(the_plan.work / "truth_check.json", check)
        else:
            result.model_truth_checks[model.name] = check
            write_json(model.run / "truth_check.json", check)
