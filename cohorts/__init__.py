"""Cohorts: MC-MED tables and waveform headers to per-stay phecode labels and patient splits."""

from .build import CohortConfig, build_cohort
from .phecodes import load_phecode_map

__all__ = ["CohortConfig", "build_cohort", "load_phecode_map"]
