"""Simulator of MC-MED-layout data with a known ground truth (``phewas simulate``)."""

from .population import INJECTED, PopulationConfig, simulate_population
from .writer import simulate_dataset

__all__ = ["INJECTED", "PopulationConfig", "simulate_dataset", "simulate_population"]
