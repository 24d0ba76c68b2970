"""Each command's settings: the dataclasses whose fields are its flags and its ``run-all`` keys.

The command line adds a flag per field with help text (:func:`phewas.base.settings.add_flags`);
``run-all`` accepts a key per field in the command's table (:func:`phewas.base.settings.table_keys`).
Flags that name a command's inputs and outputs (``--cohort``, ``--out``) or how one invocation
runs (``--resume``, ``--shard``) are not settings: ``run-all`` derives those from ``[paths]`` and
its plan. A new command's settings are one entry here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class CommandSettings:
    """A command's setting dataclasses and its ``run-all`` table (``None``: not a stage;
    ``"pairs"`` and ``"models"``: tables of tables, ``[pairs.NAME]``, ``[models.NAME]``)."""

    classes: tuple
    table: str | None


@functools.cache
def command_settings() -> dict[str, CommandSettings]:
    """The settings of every command that has any, by command name (imports each package's
    config, so it is built when a parser or a config is first built, not at import; once)."""
    from cohorts.build import CohortConfig
    from cohorts.columns import ColumnMap
    from cohorts.corpus import PairsConfig, PairsSource
    from cohorts.segments import SegmentConfig
    from cohorts.sim.population import PopulationConfig
    from cohorts.sim.probe import SimulateProbeConfig
    from encoder.baseline import FeaturesConfig
    from encoder.config import FinetuneConfig, PredictConfig, PretrainConfig
    from reports.compare import CompareConfig
    from reports.probe import ProbeConfig, ProbeInputs
    from reports.report import ReportConfig

    from .base.settings import Workers

    return {
        "simulate": CommandSettings((PopulationConfig, Workers), "simulate"),
        "build-cohort": CommandSettings((CohortConfig, ColumnMap), "build_cohort"),
        "extract-segments": CommandSettings((SegmentConfig, Workers), "extract_segments"),
        "extract-pairs": CommandSettings((PairsSource, PairsConfig, Workers), "pairs"),
        "pretrain": CommandSettings((PretrainConfig,), "pretrain"),
        "finetune": CommandSettings((FinetuneConfig,), "finetune"),
        "predict": CommandSettings((PredictConfig,), "predict"),
        "features": CommandSettings((FeaturesConfig,), "models"),
        "report": CommandSettings((ReportConfig,), "report"),
        "compare": CommandSettings((CompareConfig,), "compare"),
        "probe": CommandSettings((ProbeInputs, ProbeConfig), "probe"),
        "simulate-probe": CommandSettings((SimulateProbeConfig,), None),
    }


# a [models.NAME] table's ``kind``: the name of the command that trains and predicts it
MODEL_KINDS = ("finetune", "features")
