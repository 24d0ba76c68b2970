"""The toolkit's shared base: errors, atomic outputs and manifests, settings and their flags,
progress bars, and the AUC routine. It imports nothing of ``cohorts``, ``encoder``, ``reports`` or
the application above them (``phewas.cli``, ``phewas.study``, ``phewas.pipeline``,
``phewas.commands``); ``tests/test_layers.py`` holds every package to that."""
