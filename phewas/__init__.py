"""phewas: phenome-wide disease detection from photoplethysmography.

The command line lives in :mod:`phewas.cli`; :mod:`phewas.errors`, :mod:`phewas.io` and
:mod:`phewas.progress` are shared by the ``cohorts``, ``encoder`` and ``reports`` packages.
"""

from importlib import metadata

try:  # one place for the version: pyproject.toml, through the installed package's metadata
    __version__ = metadata.version("phewas")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
