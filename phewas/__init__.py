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

from importlib import metadata

try:  # one place for the version: pyproject.toml, through the installed package's metadata
    __version__ = metadata.version("phewas")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
