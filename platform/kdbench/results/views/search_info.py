"""How search-selected cells were chosen: the finished searches of a suite, read from the store."""

from __future__ import annotations

import json

from kdbench import paths
from kdbench.store import Store

from .jobs import canonical_params


def chosen_cells(store: Store, suite: str) -> dict[tuple, str]:
    """(teacher, student, method, canonical params) -> 'search: 8 trials, TPE (Optuna) + ASHA, best val 0.91'."""
    out = {}
    for rel in store.list_files(paths.suite_searches(suite), ".json"):
        data = store.read_bytes(rel)
        if data is None:
            continue
        s = json.loads(data)
        key = (s["teacher"], s["student"], s["method"], canonical_params(json.dumps(s["selected_params"])))
        out[key] = s["how"]
    return out
