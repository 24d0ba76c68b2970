"""phewas: phenome-wide disease detection from photoplethysmography.

The command line lives in :mod:`phewas.cli`; :mod:`phewas.errors`, :mod:`phewas.io` and
:mod:`phewas.progress` are shared by the ``cohorts``, ``encoder`` and ``reports`` packages.
"""

__version__ = "0.1.0"
