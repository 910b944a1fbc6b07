"""kdbench: a distributed benchmarking platform for knowledge distillation.

    import kdbench
    table = kdbench.open_results("kdbench-store")      # every result row: .to_pandas(), .sql(...)
    plan = kdbench.expand(kdbench.load_suite("suite.yaml"))
    counts = kdbench.run_suite("suite.yaml", kdbench.RunOptions(store="kdbench-store"))

Importing kdbench loads neither Ray nor MLflow; they are imported when a suite runs.
"""

from .orchestrate import Counts, RunOptions, run_suite
from .results import RESULT_SCHEMA, ResultsTable, open_results
from .spec import Job, Plan, SpecError, Suite, expand, load_suite
from .store import Store
from .version import __version__

__all__ = ["RESULT_SCHEMA", "Counts", "Job", "Plan", "ResultsTable", "RunOptions", "SpecError", "Store", "Suite",
           "__version__", "expand", "load_suite", "open_results", "run_suite"]
