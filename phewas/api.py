"""The Python API: one function per command, for notebooks and scripts.

Each function takes the command's flags as keyword arguments of the same names (``--min-positives``
is ``min_positives``; ``--force`` is ``force``), runs the command exactly as the command line does
(the command line calls these functions), and returns a result object: the output folder, its
manifest and its main table as a polars DataFrame (``.to_pandas()`` where pandas is wanted), with
methods that draw the pages' figures for inline display. ``load_report``, ``load_probe`` and the
other loaders open outputs made elsewhere. Errors are exceptions (:class:`~phewas.base.errors.PhewasError`
and its subclasses) with the one-line messages the command line prints; nothing here prints or
exits.

Examples
--------
>>> import phewas
>>> phewas.simulate(out="data", patients=300, seed=1)            # doctest: +SKIP
>>> cohort = phewas.build_cohort(data="data", out="cohort")       # doctest: +SKIP
>>> cohort.stays.head()                                           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import polars as pl

from .base.errors import SettingError
from .base.io import read_manifest
from .base.progress import is_quiet, set_quiet

__all__ = [
    "Cohort", "Comparison", "Dataset", "Output", "PairStore", "Predictions", "Probe", "Report", "RunAll", "Segments",
    "Simulation", "TrainingRun", "build_cohort", "compare", "convert_dataset", "extract_pairs", "extract_segments",
    "features", "finetune", "load_cohort", "load_compare", "load_probe", "load_report", "load_run", "predict",
    "pretrain", "probe", "report", "run_all", "simulate", "simulate_probe",
]


# ---------------------------------------------------------------- settings


def _settings(cls, given: dict, command: str) -> dict:
    """Check ``given`` against the fields of the config dataclass ``cls``.

    An unknown name is a :class:`SettingError` naming it and the known ones.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise SettingError(f"{command}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return {k: (tuple(v) if isinstance(v, list) and k in ("thresholds", "betas", "covariates") else v)
            for k, v in given.items()}


@contextlib.contextmanager
def _quiet(quiet: bool | None):
    """Progress bars off (``quiet=True``) or on (``False``) for one call; None leaves them as set."""
    if quiet is None:
        yield
        return
    before = is_quiet()
    set_quiet(quiet)
    try:
        yield
    finally:
        set_quiet(before)


def _path(p) -> Path | None:
    return None if p is None else Path(p)


# ---------------------------------------------------------------- results


@dataclass
class Output:
    """A finished command's output.

    Attributes
    ----------
    folder : pathlib.Path
        The output folder.
    manifest : dict
        Its ``manifest.json``: inputs, parameters, counts, versions.

    Examples
    --------
    >>> out = phewas.load_report("report")  # doctest: +SKIP
    >>> out.folder, out.manifest["counts"]  # doctest: +SKIP
    """

    folder: Path
    manifest: dict = field(repr=False)

    @property
    def counts(self) -> dict:
        """The manifest's counts."""
        return self.manifest.get("counts", {})

    def _read(self, name: str) -> pl.DataFrame:
        path = self.folder / name
        return pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)


@dataclass
class Simulation(Output):
    """A simulated dataset in MC-MED's layout (``simulate``).

    Examples
    --------
    >>> sim = phewas.simulate(out="data", patients=300)  # doctest: +SKIP
    >>> sim.truth["injected"]  # doctest: +SKIP
    """

    @property
    def truth(self) -> dict:
        """``truth.json``: the effects the simulator put in."""
        return json.loads((self.folder / "truth.json").read_text())


@dataclass
class Cohort(Output):
    """A cohort (``build-cohort``): stays, phecode labels and splits.

    Examples
    --------
    >>> cohort = phewas.load_cohort("cohort")  # doctest: +SKIP
    >>> cohort.labels.head()  # doctest: +SKIP
    """

    @property
    def stays(self) -> pl.DataFrame:
        """``stays.parquet``: one row per stay with its patient, split, age and sex."""
        return self._read("stays.parquet")

    @property
    def labels(self) -> pl.DataFrame:
        """``labels.parquet``: stays by phecodes (1 case, 0 control, null excluded)."""
        return self._read("labels.parquet")

    @property
    def phecodes(self) -> pl.DataFrame:
        """``phecodes.parquet``: each phecode's description, chapter and counts per split."""
        return self._read("phecodes.parquet")


@dataclass
class Segments(Output):
    """A segment store (``extract-segments``): preprocessed 10-s windows per stay.

    Examples
    --------
    >>> segs = phewas.extract_segments(cohort="cohort", data="data")  # doctest: +SKIP
    >>> segs.counts  # doctest: +SKIP
    """

    @property
    def index(self) -> pl.DataFrame:
        """``ppg_index.parquet``: one row per PPG window."""
        return self._read("ppg_index.parquet")

    def open(self):
        """Open the store for reading windows (:class:`cohorts.store.SegmentStore`)."""
        from cohorts.store import SegmentStore
        return SegmentStore(self.folder)


@dataclass
class PairStore(Output):
    """A pair store (``extract-pairs``): preprocessed PPG-ECG pairs of a pretraining source.

    Examples
    --------
    >>> store = phewas.extract_pairs(format="mesa", source="mesa/edfs", out="pairs/mesa")  # doctest: +SKIP
    >>> store.index.head()  # doctest: +SKIP
    """

    @property
    def index(self) -> pl.DataFrame:
        """``pairs_index.parquet``: one row per pair."""
        return self._read("pairs_index.parquet")

    def open(self):
        """Open the store for reading pairs (:class:`cohorts.corpus.PairStore`)."""
        from cohorts.corpus import open_pairs
        return open_pairs(self.folder)


@dataclass
class TrainingRun(Output):
    """A pretraining or fine-tuning run (``pretrain``, ``finetune``).

    Attributes
    ----------
    finished : bool
        False when the run stopped early (``stop_after_steps``): continue it with ``resume=True``.
    step : int
        The last step trained.
    main : bool
        Under torchrun, whether this is the first process (the one that writes and reports).

    Examples
    --------
    >>> run = phewas.load_run("pretrain")  # doctest: +SKIP
    >>> run.retrieval  # doctest: +SKIP
    """

    finished: bool = True
    step: int = 0
    main: bool = True  # under torchrun, False in the processes other than the first

    @property
    def summary(self) -> dict:
        """The run's summary (retrieval, validation figures, speed)."""
        return self.manifest.get("summary", {})

    @property
    def metrics(self) -> pl.DataFrame:
        """``metrics.jsonl``: one row per logged step and evaluation."""
        rows = [json.loads(x) for x in (self.folder / "metrics.jsonl").read_text().splitlines() if x]
        return pl.DataFrame(rows, infer_schema_length=None)

    @property
    def retrieval(self) -> pl.DataFrame | None:
        """``retrieval.csv`` (pretraining with ECG): PPG-to-ECG retrieval per source."""
        path = self.folder / "retrieval.csv"
        return pl.read_csv(path) if path.exists() else None


@dataclass
class Predictions(Output):
    """Probabilities per phecode for every stay of a split (``predict``, ``features``).

    Examples
    --------
    >>> preds = phewas.predict(run="finetune", cohort="cohort")  # doctest: +SKIP
    >>> preds.table.head()  # doctest: +SKIP
    """

    @property
    def table(self) -> pl.DataFrame:
        """``predictions.parquet``: ``stay_id``, ``n_windows`` and a probability per phecode."""
        return self._read("predictions.parquet")


@dataclass
class Report(Output):
    """A phenome-wide report (``report``): AUC and association per phenotype, with figures.

    Examples
    --------
    >>> report = phewas.load_report("report")  # doctest: +SKIP
    >>> report.forest(n=10)  # doctest: +SKIP
    """

    @property
    def table(self) -> pl.DataFrame:
        """``phenotypes.parquet``: one row per phenotype."""
        return self._read("phenotypes.parquet")

    @property
    def summary(self) -> dict:
        """``summary.json``."""
        return json.loads((self.folder / "summary.json").read_text())

    @property
    def chapters(self) -> pl.DataFrame:
        """``chapters.csv``: per chapter, phenotypes, mean AUC and counts at each threshold."""
        return self._read("chapters.csv")

    @property
    def _parameters(self) -> dict:
        return self.manifest["parameters"]

    def manhattan(self):
        """AUC per phenotype along the chapters (the page's first figure)."""
        from reports import figures
        return figures.manhattan_auc(self.table, self._parameters["thresholds"], None)

    def association(self):
        """-log10 p of the association beyond the covariates, with the Bonferroni and FDR lines."""
        from reports import figures
        from reports.adjustment import adjustment_label
        return figures.manhattan_association(self.table, self._parameters["alpha"], None,
                                             adjustment_label(tuple(self._parameters.get("covariates") or ())))

    def volcano(self):
        """Odds ratio per SD of the PPG score against -log10 p."""
        from reports import figures
        return figures.volcano(self.table, self._parameters["alpha"], None)

    def forest(self, phecodes=None, n: int = 20):
        """Odds ratios with their intervals for ``phecodes`` (default: the ``n`` strongest)."""
        from reports import figures
        return figures.forest(self.table, None, phecodes=phecodes, n=n)

    def chapters_figure(self):
        """AUC by chapter, the chapters' mean AUC and counts at AUC >= 0.70."""
        from reports import figures
        return figures.chapter_distributions(self.table, self._parameters["thresholds"], None)

    def roc(self, phecode: str):
        """Draw one phenotype's ROC curve with its pointwise band (the page's detail view).

        The curve is computed from the cohort and predictions the report was made from.
        """
        return _roc(self, [phecode])[0]


def _roc(result: Output, phecodes, models=None):
    """ROC figures of ``phecodes`` from a report's or comparison's inputs."""
    import numpy as np

    from reports import figures
    from reports.compare import load_models
    from reports.explorer import FPR_GRID, effective_case_patients, roc_on_grid, wilson
    inputs = result.manifest["inputs"]
    params = result.manifest["parameters"]
    predictions = inputs["predictions"]
    paths = [predictions["path"]] if isinstance(predictions, dict) else [p["path"] for p in predictions]
    m = load_models(inputs["cohort"], [Path(p) for p in paths], params["split"],
                    params.get("include_stays_without_windows", False))
    names = models or ["model"]
    out = []
    for phecode in phecodes:
        j = m.info["phecode"].to_list().index(phecode) if phecode in m.info["phecode"].to_list() else None
        if j is None:
            raise SettingError(f"roc: phecode {phecode!r} is not among the reported phenotypes")
        use = (m.y[:, j] == 0) | (m.y[:, j] == 1)
        positive = m.y[use, j] == 1
        units = effective_case_patients(m.y[:, [j]], m.stays["patient_id"].to_numpy())[0]
        curves = {}
        for name, scores in zip(names, m.scores):
            tpr = roc_on_grid(scores[use, j], positive)
            lo, hi = wilson(tpr, float(units))
            curves[name] = (tpr, lo, hi)
        description = m.info["description"][j] if "description" in m.info.columns else ""
        out.append(figures.roc(np.asarray(FPR_GRID), curves, f"{phecode} {description}"[:60], None))
    return out


@dataclass
class Comparison(Output):
    """Two or more models per phenotype on the same stays (``compare``).

    Examples
    --------
    >>> c = phewas.load_compare("compare")  # doctest: +SKIP
    >>> c.scatter()  # doctest: +SKIP
    """

    @property
    def table(self) -> pl.DataFrame:
        """``comparison.parquet``: one row per phenotype and pair of models."""
        return self._read("comparison.parquet")

    @property
    def summary(self) -> dict:
        """``summary.json``: per pair, phenotypes and counts of significant differences."""
        return json.loads((self.folder / "summary.json").read_text())

    def _pair(self, a, b):
        pairs = self.summary["pairs"]
        pair = pairs[0] if a is None else next(p for p in pairs if p["model_a"] == a and p["model_b"] == b)
        rows = self.table.filter((pl.col("model_a") == pair["model_a"]) & (pl.col("model_b") == pair["model_b"]))
        return pair, rows

    def scatter(self, a: str | None = None, b: str | None = None):
        """Each phenotype's AUC under model ``a`` against ``b`` (default: the first pair)."""
        from reports import figures
        pair, rows = self._pair(a, b)
        return figures.auc_scatter(rows, pair["model_a"], pair["model_b"], self.manifest["parameters"]["alpha"],
                                   None)

    def difference(self, a: str | None = None, b: str | None = None):
        """Draw the AUC difference ``a - b`` per phenotype along the chapters."""
        from reports import figures
        pair, rows = self._pair(a, b)
        return figures.manhattan_difference(rows, pair["model_a"], pair["model_b"],
                                            self.manifest["parameters"]["alpha"], None)

    def roc(self, phecode: str):
        """Every model's ROC curve of one phenotype."""
        return _roc(self, [phecode], [m["name"] for m in self.summary["models"]])[0]


@dataclass
class Probe(Output):
    """Linear probes of frozen encoders on a labelled dataset (``probe``).

    Examples
    --------
    >>> p = phewas.load_probe("probe")  # doctest: +SKIP
    >>> p.figure()  # doctest: +SKIP
    """

    @property
    def table(self) -> pl.DataFrame:
        """``probe.csv``: each encoder's metrics per task, with intervals."""
        return self._read("probe.csv")

    @property
    def paper(self) -> pl.DataFrame:
        """``paper_table.csv``: tasks by encoders, the AnyPPG paper's layout."""
        return self._read("paper_table.csv")

    @property
    def pairs(self) -> pl.DataFrame:
        """``probe_pairs.csv``: paired differences between encoders."""
        return self._read("probe_pairs.csv")

    @property
    def folds(self) -> pl.DataFrame:
        """``probe_folds.csv``: each fold's metrics."""
        return self._read("probe_folds.csv")

    @property
    def summary(self) -> dict:
        """``summary.json``."""
        return json.loads((self.folder / "summary.json").read_text())

    def figure(self):
        """Each task's main metric by encoder with its interval (the page's comparison)."""
        from reports import figures
        names = list(dict.fromkeys(self.table["encoder"].to_list()))
        return figures.probe_comparison(self.table, names, None)

    def task(self, name: str):
        """One task's metrics by encoder."""
        from reports import figures
        return figures.probe_metric(self.table, name, None)


@dataclass
class Dataset(Output):
    """A labelled PPG dataset in the probe format (``convert-dataset``, ``simulate-probe``).

    Examples
    --------
    >>> d = phewas.convert_dataset(format="troika", source="troika", out="troika")  # doctest: +SKIP
    >>> d.labels.head()  # doctest: +SKIP
    """

    @property
    def labels(self) -> pl.DataFrame:
        """``labels.csv``, as text columns."""
        return pl.read_csv(self.folder / "labels.csv", infer_schema_length=0)


@dataclass
class RunAll:
    """What ``run-all`` did.

    Attributes
    ----------
    seconds : dict
        Each stage run, and its seconds.
    report : Report
        The main model's report.
    comparison : Comparison or None
        The models side by side, where there are several.
    truth_check : dict or None
        On simulated data, what the main report recovered of the truth.
    model_truth_checks : dict
        The same for each other model.

    Examples
    --------
    >>> study = phewas.run_all(config="study.toml")  # doctest: +SKIP
    >>> study.seconds  # doctest: +SKIP
    """

    seconds: dict
    report: Report
    comparison: Comparison | None = None
    truth_check: dict | None = None
    model_truth_checks: dict = field(default_factory=dict)


def _output(cls, folder, manifest: dict | None = None, **extra):
    folder = Path(folder)
    return cls(folder, manifest if manifest is not None else read_manifest(folder), **extra)


# ---------------------------------------------------------------- commands


def simulate(*, out, workers: int | None = None, force: bool = False, quiet: bool | None = None,
             **settings) -> Simulation:
    """Write a synthetic dataset in MC-MED's layout with a known truth (``phewas simulate``).

    Parameters
    ----------
    out : path
        The folder to write.
    workers : int, optional
        Processes writing waveforms (default: all cores).
    force : bool
        Replace an existing folder.
    quiet : bool, optional
        No progress bars (True), or bars (False); None leaves them as they are.
    **settings
        ``simulate``'s settings (:class:`cohorts.sim.PopulationConfig`): ``patients``, ``seed``, ...

    Returns
    -------
    Simulation

    Raises
    ------
    phewas.base.errors.PhewasError
        A bad setting, or an output that exists (without ``force``).

    Examples
    --------
    >>> sim = phewas.simulate(out="data", patients=300, seed=1)  # doctest: +SKIP
    >>> sim.counts  # doctest: +SKIP
    """
    from cohorts.sim import PopulationConfig, simulate_dataset
    cfg = PopulationConfig(**_settings(PopulationConfig, settings, "simulate"))
    with _quiet(quiet):
        manifest = simulate_dataset(out, cfg, workers=workers, overwrite=force)
    return _output(Simulation, out, manifest)


def build_cohort(*, data, out, columns=None, force: bool = False, quiet: bool | None = None, **settings) -> Cohort:
    """MC-MED's tables and WFDB headers to stays, phecode labels and splits (``phewas build-cohort``).

    Parameters
    ----------
    data : path
        The MC-MED folder (``visits.csv``, ``pmh.csv``, ``waveforms/``).
    out : path
        The cohort folder to write.
    columns : path, optional
        A TOML column map for other column names.
    force : bool
        Replace an existing folder.
    quiet : bool, optional
        Progress bars off (True) or on (False).
    **settings
        :class:`cohorts.CohortConfig`'s settings: ``codes``, ``phecodes``, ``min_ppg_seconds``, ...

    Returns
    -------
    Cohort

    Examples
    --------
    >>> cohort = phewas.build_cohort(data="data", out="cohort", codes="all")   # doctest: +SKIP
    >>> cohort.counts["stays"]                                                 # doctest: +SKIP
    """
    from cohorts import CohortConfig
    from cohorts import build_cohort as build
    cfg = CohortConfig(**_settings(CohortConfig, settings, "build-cohort"))
    with _quiet(quiet):
        manifest = build(data, out, cfg, columns_file=_path(columns), overwrite=force)
    return _output(Cohort, out, manifest)


def extract_segments(*, cohort, data=None, workers: int | None = None, shard=(0, 1), merge: int = 0,
                     force: bool = False, quiet: bool | None = None, **settings) -> Segments:
    """Preprocessed 10-s PPG windows per stay, and PPG-ECG pairs (``phewas extract-segments``).

    Parameters
    ----------
    cohort : path
        The cohort folder; the store is written to ``COHORT/segments``.
    data : path
        The MC-MED folder the cohort was built from (not needed with ``merge``).
    workers : int, optional
        Processes (default: all cores).
    shard : tuple of int
        ``(i, n)``: build one n-th of the stays.
    merge : int
        Join this many finished shards instead of extracting.
    force, quiet
        As for :func:`build_cohort`.
    **settings
        :class:`cohorts.SegmentConfig`'s settings: ``preprocess``, ``per_stay``, ...

    Returns
    -------
    Segments

    Examples
    --------
    >>> segs = phewas.extract_segments(cohort="cohort", data="data", per_stay=10)  # doctest: +SKIP
    >>> segs.counts["ppg_windows"]  # doctest: +SKIP
    """
    from cohorts import SegmentConfig, merge_shards
    from cohorts import extract_segments as extract
    with _quiet(quiet):
        if merge:
            manifest = merge_shards(cohort, merge, overwrite=force)
        else:
            if data is None:
                raise SettingError("extract_segments: data (the MC-MED folder) is needed unless merge is given")
            cfg = SegmentConfig(**_settings(SegmentConfig, settings, "extract-segments"))
            manifest = extract(data, cohort, cfg, shard=tuple(shard), workers=workers, overwrite=force)
    return _output(Segments, Path(cohort) / "segments", manifest)


def extract_pairs(*, out, format=None, source=None, workers: int | None = None, shard=(0, 1),  # noqa: A002
                  merge: int = 0, strict: bool = False, force: bool = False, quiet: bool | None = None,
                  **settings) -> PairStore:
    """Convert a pretraining source (PulseDB, MESA, CFS, HSP) to a pair store (``phewas extract-pairs``).

    Parameters
    ----------
    out : path
        The pair store to write.
    format : {"pulsedb", "mesa", "cfs", "hsp"}
        The source's layout.
    source : path
        The source's folder as distributed.
    workers, shard, merge
        As for :func:`extract_segments`.
    strict : bool
        A file that cannot be converted is an error (default: skipped and listed).
    force, quiet
        As for :func:`build_cohort`.
    **settings
        :class:`cohorts.corpus.PairsConfig`'s settings: ``preprocess``, ``channels``, ``ecg_units``, ...

    Returns
    -------
    PairStore

    Examples
    --------
    >>> store = phewas.extract_pairs(format="mesa", source="mesa/edfs", out="pairs/mesa")  # doctest: +SKIP
    >>> store.counts["pairs"]  # doctest: +SKIP
    """
    from cohorts.corpus import PairsConfig, merge_pairs
    from cohorts.corpus import extract_pairs as extract
    with _quiet(quiet):
        if merge:
            manifest = merge_pairs(out, merge, overwrite=force)
        else:
            if format is None or source is None:
                raise SettingError("extract_pairs: format and source are needed unless merge is given")
            cfg = PairsConfig(**_settings(PairsConfig, settings, "extract-pairs"))
            manifest = extract(format, source, out, cfg, shard=tuple(shard), workers=workers, overwrite=force,
                               strict=strict)
    return _output(PairStore, out, manifest)


def _net(config):
    """Read a ``--ppg-config`` / ``--ecg-config``: a JSON file's path, a dict, or an architecture."""
    if config is None:
        return None
    from encoder.families import architecture_from_dict
    if isinstance(config, (str, Path)):
        try:
            config = json.loads(Path(config).read_text())
        except (OSError, ValueError) as err:
            raise SettingError(f"{config}: not an encoder configuration ({err})") from None
    try:
        return architecture_from_dict(config) if isinstance(config, dict) else config
    except (ValueError, TypeError) as err:
        raise SettingError(f"not an encoder configuration ({err})") from None


def pretrain(*, out, cohort=None, pairs=(), preset: str = "study", resume: bool = False,
             stop_after_steps: int | None = None, ppg_config=None, ecg_config=None, force: bool = False,
             quiet: bool | None = None, **settings) -> TrainingRun:
    """ECG-guided contrastive pretraining of the PPG encoder, or SimCLR / BYOL (``phewas pretrain``).

    Parameters
    ----------
    out : path
        The run folder.
    cohort : path, optional
        A cohort with its segment store (its pairs); optional when ``pairs`` are given.
    pairs : list of path
        Pair stores of other sources (:func:`extract_pairs`).
    preset : {"study", "demo"}
        The released encoders' size, or a narrow one for CPU runs.
    resume : bool
        Continue a stopped run from its last checkpoint.
    stop_after_steps : int, optional
        End this call after that many steps (resume later).
    ppg_config, ecg_config : path or dict, optional
        Net1D settings of the encoders.
    force, quiet
        As for :func:`build_cohort`.
    **settings
        :class:`encoder.config.PretrainConfig`'s settings: ``recipe``, ``steps``, ``ecg_checkpoint``, ...

    Returns
    -------
    TrainingRun

    Examples
    --------
    >>> run = phewas.pretrain(cohort="cohort", out="pretrain", recipe="anyppg", pairs=["pairs/mesa"])  # doctest: +SKIP
    >>> run.finished  # doctest: +SKIP
    """
    from encoder.config import PretrainConfig, pretrain_config
    from encoder.pretrain import pretrain as train
    given = _settings(PretrainConfig, settings, "pretrain")
    cfg = pretrain_config(preset, ppg=_net(ppg_config), ecg=_net(ecg_config), **given)
    with _quiet(quiet):
        result = train(_path(cohort), out, cfg, resume=resume, overwrite=force, stop_after_steps=stop_after_steps,
                       pairs=[Path(p) for p in pairs])
    return _run_result(out, result)


def _run_result(out, result) -> TrainingRun:
    out = Path(out)
    finished_here = result.main and result.finished and (out / "manifest.json").exists()
    manifest = read_manifest(out) if finished_here else {"summary": result.summary or {}}
    return TrainingRun(out, manifest, finished=result.finished, step=result.step, main=result.main)


def finetune(*, cohort, out, preset: str = "study", resume: bool = False, stop_after_steps: int | None = None,
             ppg_config=None, force: bool = False, quiet: bool | None = None, **settings) -> TrainingRun:
    """End-to-end multi-label fine-tuning over every phecode (``phewas finetune``).

    Parameters
    ----------
    cohort : path
        A cohort with its segment store.
    out : path
        The run folder.
    preset, resume, stop_after_steps, ppg_config, force, quiet
        As for :func:`pretrain`.
    **settings
        :class:`encoder.config.FinetuneConfig`'s settings: ``init``, ``epochs``, ``batch_size``, ...

    Returns
    -------
    TrainingRun

    Examples
    --------
    >>> run = phewas.finetune(cohort="cohort", out="finetune", init="pretrain", preset="demo")  # doctest: +SKIP
    >>> run.metrics.tail()  # doctest: +SKIP
    """
    from encoder.config import FinetuneConfig, finetune_config
    from encoder.finetune import finetune as train
    cfg = finetune_config(preset, ppg=_net(ppg_config), **_settings(FinetuneConfig, settings, "finetune"))
    with _quiet(quiet):
        result = train(cohort, out, cfg, resume=resume, overwrite=force, stop_after_steps=stop_after_steps)
    return _run_result(out, result)


def predict(*, run, cohort, force: bool = False, quiet: bool | None = None, **settings) -> Predictions:
    """Probabilities per phecode for every stay of a split (``phewas predict``).

    Parameters
    ----------
    run : path
        A finished fine-tuning run; ``predictions.parquet`` is written into it.
    cohort : path
        The cohort (with its segment store).
    force, quiet
        As for :func:`build_cohort`.
    **settings
        :class:`encoder.config.PredictConfig`'s settings: ``split``, ``device``, ...

    Returns
    -------
    Predictions

    Examples
    --------
    >>> preds = phewas.predict(run="finetune", cohort="cohort")  # doctest: +SKIP
    >>> preds.table.head()  # doctest: +SKIP
    """
    from encoder.config import PredictConfig
    from encoder.predict import predict as run_predict
    cfg = PredictConfig(**_settings(PredictConfig, settings, "predict"))
    with _quiet(quiet):
        run_predict(cohort, run, cfg, overwrite=force)
    manifest = json.loads((Path(run) / "predictions.manifest.json").read_text())
    return Predictions(Path(run), manifest)


def features(*, cohort, out, force: bool = False, quiet: bool | None = None, **settings) -> Predictions:
    """Fit the pulse-feature baseline: features per stay, a logistic model per phecode (``phewas features``).

    Parameters
    ----------
    cohort : path
        A cohort with its segment store.
    out : path
        The run folder (``predictions.parquet``, ``heart_rate_report/``).
    force, quiet
        As for :func:`build_cohort`.
    **settings
        :class:`encoder.baseline.FeaturesConfig`'s settings: ``split``, ``min_positives``, ...

    Returns
    -------
    Predictions

    Examples
    --------
    >>> baseline = phewas.features(cohort="cohort", out="features")  # doctest: +SKIP
    >>> baseline.folder / "predictions.parquet"  # doctest: +SKIP
    """
    from encoder.baseline import FeaturesConfig

    from .commands import features as run_features
    cfg = FeaturesConfig(**_settings(FeaturesConfig, settings, "features"))
    with _quiet(quiet):
        manifest = run_features(cohort, out, cfg, overwrite=force)
    return Predictions(Path(out), manifest)


def report(*, cohort, predictions, out, force: bool = False, quiet: bool | None = None, **settings) -> Report:
    """Report AUC per phenotype and chapter, and association beyond covariates (``phewas report``).

    Parameters
    ----------
    cohort : path
        The cohort.
    predictions : path
        ``predictions.parquet`` from :func:`predict` or :func:`features`.
    out : path
        The report folder.
    force, quiet
        As for :func:`build_cohort`.
    **settings
        :class:`reports.report.ReportConfig`'s settings: ``min_positives``, ``covariates``, ``alpha``, ...

    Returns
    -------
    Report

    Examples
    --------
    >>> r = phewas.report(cohort="cohort", predictions="run/predictions.parquet", out="report",
    ...                   covariates=["triage_acuity"])                      # doctest: +SKIP
    >>> r.manhattan()                                                        # doctest: +SKIP
    """
    from reports.report import ReportConfig, make_report
    cfg = ReportConfig(**_settings(ReportConfig, settings, "report"))
    with _quiet(quiet):
        make_report(cohort, predictions, out, cfg, overwrite=force)
    return _output(Report, out)


def compare(*, cohort, predictions, out, names=None, force: bool = False, quiet: bool | None = None,
            **settings) -> Comparison:
    """Two or more models per phenotype on the same stays, with paired tests (``phewas compare``).

    Parameters
    ----------
    cohort : path
        The cohort.
    predictions : list of path
        Two or more ``predictions.parquet`` files.
    out : path
        The comparison folder.
    names : list of str, optional
        A name per predictions file (default: each file's folder name).
    force, quiet
        As for :func:`build_cohort`.
    **settings
        :class:`reports.compare.CompareConfig`'s settings.

    Returns
    -------
    Comparison

    Examples
    --------
    >>> c = phewas.compare(cohort="cohort", out="compare", names=["features", "finetune"],  # doctest: +SKIP
    ...               predictions=["features/predictions.parquet", "finetune/predictions.parquet"])
    >>> c.scatter()  # doctest: +SKIP
    """
    from reports.compare import CompareConfig
    from reports.compare import compare as run_compare
    cfg = CompareConfig(**_settings(CompareConfig, settings, "compare"))
    with _quiet(quiet):
        run_compare(cohort, [Path(p) for p in predictions], out, names=names, config=cfg, overwrite=force)
    return _output(Comparison, out)


def probe(*, dataset, encoders=None, out, names=None, force: bool = False, quiet: bool | None = None,
          encoder=None, **settings) -> Probe:
    """Linear probes of frozen encoders on a labelled PPG dataset (``phewas probe``).

    Parameters
    ----------
    dataset : path
        A dataset folder in the probe format.
    encoders : str or list of str
        Encoder specs: run folders, released weights (``papagei-s:FILE``, ...), ``random``,
        ``features`` (``encoder=`` is the same, as earlier versions named it).
    out : path
        The probe folder.
    names : list of str, optional
        A name per encoder.
    force, quiet
        As for :func:`build_cohort`.
    **settings
        :class:`reports.probe.ProbeConfig`'s settings: ``evaluation``, ``protocol``, ``input``, ...

    Returns
    -------
    Probe

    Examples
    --------
    >>> p = phewas.probe(dataset="but-ppg", encoders=["anyppg.pth", "random"], out="probe")  # doctest: +SKIP
    >>> p.table.head()  # doctest: +SKIP
    >>> p.figure()  # doctest: +SKIP
    """
    from reports.probe import ProbeConfig
    from reports.probe import probe as run_probe
    cfg = ProbeConfig(**_settings(ProbeConfig, settings, "probe"))
    if (encoders is None) == (encoder is None):
        raise SettingError("probe: name the encoders once, as encoders=[...]")
    given = encoders if encoders is not None else encoder
    encoders = [given] if isinstance(given, (str, Path)) else list(given)
    with _quiet(quiet):
        run_probe(dataset, [str(e) for e in encoders], out, names=names, config=cfg, overwrite=force)
    return _output(Probe, out)


def simulate_probe(*, out, force: bool = False, quiet: bool | None = None, **settings) -> Dataset:
    """Simulate a labelled PPG dataset with known effects (``phewas simulate-probe``).

    Parameters
    ----------
    out : path
        The dataset folder.
    force, quiet
        As for :func:`build_cohort`.
    **settings
        :class:`cohorts.sim.probe.SimulateProbeConfig`'s settings: ``subjects``, ``seed``, ...

    Returns
    -------
    Dataset

    Examples
    --------
    >>> d = phewas.simulate_probe(out="probe-data", seed=0)  # doctest: +SKIP
    >>> d.labels.head()  # doctest: +SKIP
    """
    from cohorts.sim.probe import SimulateProbeConfig, simulate_probe_dataset
    cfg = SimulateProbeConfig(**_settings(SimulateProbeConfig, settings, "simulate-probe"))
    with _quiet(quiet):
        manifest = simulate_probe_dataset(out, cfg, overwrite=force)
    return _output(Dataset, out, manifest)


def convert_dataset(*, format, source, out, strict: bool = False, force: bool = False,  # noqa: A002
                    quiet: bool | None = None) -> Dataset:
    """Convert a public PPG dataset, as published, to the probe format (``phewas convert-dataset``).

    Parameters
    ----------
    format : str
        One of :data:`cohorts.converters.FORMATS` (``but-ppg``, ``troika``, ...).
    source : path
        The dataset's folder as distributed.
    out : path
        The dataset folder to write.
    strict : bool
        A damaged file is an error (default: skipped and listed in the manifest).
    force, quiet
        As for :func:`build_cohort`.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> d = phewas.convert_dataset(format="but-ppg", source="but_ppg_1.0.0", out="but-ppg")  # doctest: +SKIP
    >>> d.counts  # doctest: +SKIP
    """
    from cohorts.converters import FORMATS
    from cohorts.converters import convert_dataset as convert
    if format not in FORMATS:
        raise SettingError(f"convert_dataset: format {format!r}: one of {', '.join(FORMATS)}")
    with _quiet(quiet):
        manifest = convert(format, source, out, overwrite=force, strict=strict)
    return _output(Dataset, out, manifest)


def run_all(*, config, force: bool = False, quiet: bool | None = None) -> RunAll:
    """Every stage from one TOML file, skipping what is up to date (``phewas run-all``).

    Parameters
    ----------
    config : path
        The TOML file.
    force : bool
        Rerun every stage.
    quiet : bool, optional
        Progress bars off (True) or on (False).

    Returns
    -------
    RunAll

    Examples
    --------
    >>> study = phewas.run_all(config="study.toml")  # doctest: +SKIP
    >>> study.report.manhattan()  # doctest: +SKIP
    """
    from .study import run_all as run
    with _quiet(quiet):
        result = run(config, force=force)
    comparison = _output(Comparison, result.compare_page.parent) if result.compare_page is not None else None
    return RunAll(result.seconds, _output(Report, result.report.parent), comparison, result.truth_check,
                  result.model_truth_checks)


# ---------------------------------------------------------------- loaders


def load_cohort(folder) -> Cohort:
    """Open a cohort folder written by :func:`build_cohort`.

    Examples
    --------
    >>> cohort = phewas.load_cohort("cohort")  # doctest: +SKIP
    >>> cohort.stays.head()  # doctest: +SKIP
    """
    return _output(Cohort, folder)


def load_report(folder) -> Report:
    """Open a report folder written by :func:`report`.

    Examples
    --------
    >>> report = phewas.load_report("report")  # doctest: +SKIP
    >>> report.manhattan()  # doctest: +SKIP
    """
    return _output(Report, folder)


def load_compare(folder) -> Comparison:
    """Open a comparison folder written by :func:`compare`.

    Examples
    --------
    >>> c = phewas.load_compare("compare")  # doctest: +SKIP
    >>> c.difference()  # doctest: +SKIP
    """
    return _output(Comparison, folder)


def load_probe(folder) -> Probe:
    """Open a probe folder written by :func:`probe`.

    Examples
    --------
    >>> p = phewas.load_probe("probe")  # doctest: +SKIP
    >>> p.table.head()  # doctest: +SKIP
    """
    return _output(Probe, folder)


def load_run(folder) -> TrainingRun:
    """Open a pretraining or fine-tuning run folder.

    Examples
    --------
    >>> run = phewas.load_run("finetune")  # doctest: +SKIP
    >>> run.finished, run.step  # doctest: +SKIP
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    return TrainingRun(folder, manifest, finished=manifest.get("summary", {}).get("finished", True),
                       step=manifest.get("summary", {}).get("step", 0))
