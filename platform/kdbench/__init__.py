"""kdbench: a distributed benchmarking platform for knowledge distillation.

    import kdbench
    table = kdbench.open_results("kdbench-store")      # every result row: .to_pandas(), .sql(...)
    plan = kdbench.expand(kdbench.load_suite("suite.yaml"))
    counts = kdbench.run_suite("suite.yaml", kdbench.RunOptions(store="kdbench-store"))

Importing kdbench loads neither Ray nor MLflow; they are imported when a suite runs. The names below
are loaded on first use, so `import kdbench.engine` needs only PyTorch, pydantic and PyYAML (a GPU
machine without Ray, MLflow or DuckDB can drive the engine directly).
"""

from __future__ import annotations

from .lazy import lazy_exports
from .version import __version__ as __version__

_EXPORTS = {
    "Counts": "orchestrate", "RunOptions": "orchestrate", "run_suite": "orchestrate",
    "RESULT_SCHEMA": "results", "ResultsTable": "results", "open_results": "results",
    "Job": "jobs", "Plan": "suite", "SpecError": "suite", "Suite": "suite", "expand": "suite", "load_suite": "suite",
    "Store": "store",
}

__all__ = sorted([*_EXPORTS, "__version__"])
__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return __all__
