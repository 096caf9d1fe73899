"""Quartermaster: forecasts workload demand and moves capacity where it will be needed."""

__version__ = "0.1.0"
