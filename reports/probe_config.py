"""``probe``'s settings: the command's config (:class:`ProbeConfig`), what it reads
(:class:`ProbeInputs`), and the passes it runs (:class:`Settings`: its own, and the release's for
``paper_table.csv``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cohorts.probe_data import INPUTS, WindowRule
from cohorts.profiles import DEFAULT_PROFILE, PROFILES
from phewas.base.settings import check_settings, setting

from .probe_models import MULTICLASS, RELEASE_BOOTSTRAP
from .probe_split import EVALUATIONS

REFERENCE = "constant"  # the reference row: the training mean, or the training prevalence
PROTOCOLS = ("grouped", "anyppg")
PAPER = ("anyppg", "same", "none")
GROUPED_BOOTSTRAP = 1000


@dataclass
class ProbeConfig:
    """Settings of ``probe``: each field is a flag of the same name, and a key of ``run-all``'s
    ``[probe]`` table."""

    task: str | None = setting(None, "probe this task only (default: every task of dataset.toml)")
    seed: int = setting(0, "seed of the splits, the folds, the bootstrap and the random encoder")
    evaluation: str = setting("auto", "split: one 8:2 split (the paper's); repeated: --splits subject splits; "
                              "loso: leave one subject out; auto: repeated where one split's test part would "
                              "hold fewer than 10 subjects, else split", choices=EVALUATIONS)
    splits: int = setting(10, "subject splits of --evaluation repeated")
    refit_search: bool = setting(False, "under --evaluation repeated, search each bootstrap resample's "
                                 "hyperparameters anew (25-40 times slower; default: the evaluation's most chosen)")
    test_fraction: float = setting(0.2, "share of subjects (or examples) held out when there is no official split")
    folds: int = setting(5, "cross-validation folds that choose the hyperparameters on the training part")
    bootstrap: int | None = setting(None, "bootstrap resamples for the intervals (default: 1000 of the test "
                                    "subjects; 50 of all subjects, each refitted, under --evaluation repeated; "
                                    "500 of the test rows under --protocol anyppg)")
    preprocess: str = setting(DEFAULT_PROFILE, "preprocessing profile: anyppg (the AnyPPG release's, window by "
                              "window) or robust (as extract-segments --preprocess robust)", choices=PROFILES)
    input: str = setting("windows", "windows: 10-s windows of each example, embeddings averaged; anyppg: each "
                         "example Fourier-resampled to 1,250 samples whatever its duration (the release's)",
                         choices=INPUTS)
    protocol: str = setting("grouped", "grouped: inner folds and bootstrap by subject; anyppg: the release's "
                            "linear_prob.py exactly (scaler, folds over rows, its grids, random_state=42, "
                            "bootstrap over rows)", choices=PROTOCOLS)
    paper: str = setting("anyppg", "paper_table.csv by anyppg (the release's input, protocol and single split), "
                         "same (this run's settings) or none", choices=PAPER)
    max_invalid: float = setting(0.25, "reject windows with a larger share of invalid samples (robust profile, "
                                 "as extract-segments)")
    min_seconds: float = setting(5.0, "shortest example kept (shorter than 10 s: zero-padded)")
    multiclass: str = setting("forest", "multi-class probe: forest (the paper's random forest) or logistic",
                              choices=MULTICLASS)
    reference: bool = setting(True, "leave out the constant reference (training mean or prevalence)",
                              flag="--no-reference")
    cache: str | None = setting(None, "folder of preprocessed windows and embeddings (default: the dataset's "
                                "cache/, or a temporary one where that cannot be written)")
    batch_size: int = setting(256, "windows per forward pass")
    device: str = setting("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
    workers: int | None = setting(None, "processes for preprocessing, pulse features and forests (default: all "
                                  "cores)")

    def __post_init__(self):
        check_settings(
            self,
            (0 < self.test_fraction < 1, "test_fraction", "between 0 and 1"),
            (self.evaluation in EVALUATIONS, "evaluation", f"one of {EVALUATIONS}"),
            (self.splits >= 2, "splits", "at least 2"),
            (self.folds >= 2, "folds", "at least 2"),
            (self.bootstrap is None or self.bootstrap >= 0, "bootstrap", "0 or more"),
            (self.preprocess in PROFILES, "preprocess", f"one of {PROFILES}"),
            (self.input in INPUTS, "input", f"one of {INPUTS}"),
            (self.protocol in PROTOCOLS, "protocol", f"one of {PROTOCOLS}"),
            (self.paper in PAPER, "paper", f"one of {PAPER}"),
            (0 <= self.max_invalid <= 1, "max_invalid", "between 0 and 1"),
            (0 < self.min_seconds <= 10, "min_seconds", "between 0 and 10"),
            (self.multiclass in MULTICLASS, "multiclass", f"one of {MULTICLASS}"),
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.workers is None or self.workers >= 1, "workers", "at least 1"),
        )


@dataclass(frozen=True)
class ProbeInputs:
    """What ``probe`` probes: flags, and keys of ``run-all``'s ``[probe]`` table (there the
    dataset is relative to the config file, and ``encoders`` are added to the pretraining run and
    random weights, as a list or a table ``NAME = spec``)."""

    dataset: Path = setting(help="a dataset folder (dataset.toml, labels.csv)", required=True)
    encoders: tuple[str, ...] = setting(help="pretraining or fine-tuning run folders, AnyPPG weights "
                                        "(.pth/.safetensors), or random", flag=("--encoders", "--encoder"),
                                        factory=tuple, many=True, required=True, metavar="SPEC")


@dataclass(frozen=True)
class Settings:
    """One way of probing (see :func:`probe`): the window rule, the protocol, the evaluation, the
    bootstrap's size, and the name of the pass (``main``, or ``paper`` for ``paper_table.csv``)."""

    rule: WindowRule
    protocol: str
    evaluation: str
    bootstrap: int | None  # None: the evaluation's and protocol's default (:func:`bootstrap_rounds`)
    name: str = "main"

    def describe(self) -> dict:
        return {"preprocess": self.rule.preprocess, "input": self.rule.input, "protocol": self.protocol,
                "evaluation": self.evaluation, "bootstrap": self.bootstrap}


REFITS = 50  # --evaluation repeated: subject resamples, each evaluated anew (its probes refitted)
REFIT_SPLITS = 5  # splits of each resample's evaluation


def bootstrap_rounds(given: int | None, evaluation: str, protocol: str) -> int:
    """The bootstrap's resamples: ``given``, else 50 refitted subject resamples for repeated
    splits, 500 test rows under the release's protocol (its own), 1,000 test subjects otherwise."""
    if given is not None:
        return given
    if evaluation == "repeated":
        return REFITS
    return RELEASE_BOOTSTRAP if protocol == "anyppg" else GROUPED_BOOTSTRAP


def probe_settings(cfg: ProbeConfig) -> list[Settings]:
    """The passes a probe runs: its own settings (``main``), and the release's for
    ``paper_table.csv`` (``paper``: its input, protocol and single split) when ``cfg.paper`` asks
    for them and they differ."""
    main = Settings(WindowRule(cfg.preprocess, cfg.input, cfg.max_invalid, cfg.min_seconds), cfg.protocol,
                    cfg.evaluation, cfg.bootstrap)
    if cfg.paper != "anyppg":
        return [main]
    paper = Settings(WindowRule("anyppg", "anyppg", cfg.max_invalid, cfg.min_seconds), "anyppg", "split",
                     cfg.bootstrap, "paper")
    same = (paper.rule, paper.protocol, paper.evaluation) == (main.rule, main.protocol, main.evaluation)
    return [main] if same else [main, paper]
