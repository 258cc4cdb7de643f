"""The data-quality gate: a catalogue of checks (expectations/checks.csv) run with Great
Expectations on data read from the warehouse; results in dq.*, an offline HTML report in dq/.

Nothing heavy is imported here: Great Expectations loads on the first check that runs.
"""
from kap.quality.catalogue import Check, CatalogueError, load_catalogue
from kap.quality.core import CriticalCheckFailed, ValidationOutcome, validate

__all__ = ["Check", "CatalogueError", "CriticalCheckFailed", "ValidationOutcome", "load_catalogue", "validate"]
