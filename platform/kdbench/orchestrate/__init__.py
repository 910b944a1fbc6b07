"""Ray Tune orchestration of a suite. Ray is imported only when a suite actually runs.

The names below load on first use: a trial's worker imports `kdbench.orchestrate.trainable`, which
must not pull in the driver's side (the runner, the results store, the leaderboards' SciPy).
"""

from __future__ import annotations

from kdbench.lazy import lazy_exports

_EXPORTS = {"RunOptions": "runner", "run_suite": "runner", "Counts": "state", "SuiteRun": "state"}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
