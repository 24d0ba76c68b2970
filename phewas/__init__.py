"""phewas: phenome-wide disease detection from photoplethysmography.

Layers, lowest first (``tests/test_layers.py`` checks that imports only go down):

* ``phewas.base``: errors, atomic outputs and manifests, settings, progress bars, the AUC routine;
* ``cohorts``: MC-MED tables and waveforms to labels, splits and segment stores; probe datasets;
  the simulator;
* ``encoder``: the PPG encoder, pretraining, fine-tuning, prediction, the pulse-feature baseline;
* ``reports``: report, compare, probe, and their statistics and figures;
* the application: ``phewas.api`` (the Python API, re-exported here: ``phewas.report(...)``),
  ``phewas.cli`` (the command line, a thin layer over the API), ``phewas.study`` and
  ``phewas.pipeline`` (every stage from one file), ``phewas.commands``.
"""

API = ("build_cohort", "compare", "convert_dataset", "extract_pairs", "extract_segments", "features", "finetune",
       "load_cohort", "load_compare", "load_probe", "load_report", "load_run", "predict", "pretrain", "probe",
       "report", "run_all", "simulate", "simulate_probe")
__all__ = [*API, "__version__"]


def __getattr__(name: str):
    # the Python API (phewas.api) and the version are loaded on first use: ``import phewas`` stays
    # instant (the executable catches Ctrl-C only after it), and pyproject.toml stays the
    # version's one home, through the installed metadata
    if name in API:
        from . import api
        return getattr(api, name)
    if name == "__version__":
        from .base.io import own_version
        return own_version()
    raise AttributeError(f"module 'phewas' has no attribute {name!r}")
