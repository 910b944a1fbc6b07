"""Ray Tune orchestration of a suite. Ray is imported only when a suite actually runs.

The names below load on first use: a trial's worker imports `kdbench.orchestrate.trainable`, which
must not pull in the driver's side (the runner, the results store, the leaderboards' SciPy).
"""

from __future__ import annotations

import importlib

_EXPORTS = {"RunOptions": "runner", "run_suite": "runner", "Counts": "state", "SuiteRun": "state"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
