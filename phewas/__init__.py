"""phewas: phenome-wide disease detection from photoplethysmography.

Layers, lowest first (``tests/test_layers.py`` checks that imports only go down):

* ``phewas.base``: errors, atomic outputs and manifests, settings, progress bars, the AUC routine;
* ``cohorts``: MC-MED tables and waveforms to labels, splits and segment stores; probe datasets;
  the simulator;
* ``encoder``: the PPG encoder, pretraining, fine-tuning, prediction, the pulse-feature baseline;
* ``reports``: report, compare, probe, and their statistics and figures;
* the application: ``phewas.cli`` (the command line), ``phewas.run_all`` and ``phewas.pipeline``
  (every stage from one file), ``phewas.commands``.
"""

def __getattr__(name: str):
    # the version is read on demand: ``import phewas`` stays instant (the executable catches Ctrl-C
    # only after it), and pyproject.toml stays its one home, through the installed metadata
    if name == "__version__":
        from importlib import metadata
        try:
            return metadata.version("phewas")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            return "unknown"
    raise AttributeError(f"module 'phewas' has no attribute {name!r}")
