"""Cohorts: MC-MED tables and waveform headers to per-stay phecode labels and patient splits."""

from .build import CohortConfig, build_cohort
from .phecodes import load_phecode_map
from .segments import SegmentConfig, extract_segments, merge_shards
from .store import open_segments

__all__ = ["CohortConfig", "SegmentConfig", "build_cohort", "extract_segments", "load_phecode_map",
           "merge_shards", "open_segments"]
