"""Commands that chain functions of more than one package, for the command line and ``run-all``
alike (every other command is one function of its package: see ``phewas.cli``)."""

from __future__ import annotations

from pathlib import Path


def features(cohort, run, config, *, overwrite: bool = False) -> dict:
    """``phewas features``: the pulse-feature baseline's run folder (``encoder.baseline``), then the
    report of heart rate alone in it (``RUN/heart_rate_report``). Returns the run's manifest with
    the heart-rate report's summary under ``heart_rate_report``."""
    from encoder.baseline import pulse_baseline
    from reports.report import heart_rate_report
    manifest = pulse_baseline(cohort, run, config, overwrite=overwrite)
    summary = heart_rate_report(cohort, Path(run), config.split, config.min_positives)
    return manifest | {"heart_rate_report": summary}
