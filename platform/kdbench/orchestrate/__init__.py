"""Ray Tune orchestration of a suite. Ray is imported only when a suite actually runs."""

from .runner import RunOptions, run_suite
from .state import Counts, SuiteRun

__all__ = ["Counts", "RunOptions", "SuiteRun", "run_suite"]
