"""The results store (Parquet), its schema, queries and leaderboards.

`stats` (SciPy) and `views` (the study views: views.takd(store, suite) -> pa.Table, …) load on first use:
writing a result row needs neither.
"""

import importlib

from .rows import result_row
from .schema import PLAN_SCHEMA, RESULT_SCHEMA, STATUS_FAILED, STATUS_OK, STATUS_SKIPPED
from .store import read_plan, read_results, statuses, write_plan, write_result
from .table import QueryError, ResultsTable, open_results

__all__ = ["PLAN_SCHEMA", "RESULT_SCHEMA", "STATUS_FAILED", "STATUS_OK", "STATUS_SKIPPED", "QueryError",
           "ResultsTable", "open_results", "read_plan", "read_results", "result_row", "statuses",
           "write_plan", "write_result", "stats", "views"]


def __getattr__(name: str):
    if name in ("stats", "views"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
