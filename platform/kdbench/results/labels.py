"""Short display labels for methods in the plots (kdbench.results.views.plots)."""

from __future__ import annotations

import json


def ambiguous_methods(rows: list[dict]) -> set[str]:
    """Methods that appear with more than one hyperparameter setting (their labels need the values)."""
    seen: dict[str, set[str]] = {}
    for r in rows:
        seen.setdefault(r["method"], set()).add(r["method_params"])
    return {m for m, params in seen.items() if len(params) > 1}


def method_label(method: str, params: str | None, ambiguous: set[str]) -> str:
    """`kd`, or `kd(alpha=0.9, temperature=8.0)` when the table holds several settings of kd."""
    if method not in ambiguous or params in (None, "{}"):
        return method
    shown = ", ".join(f"{k}={v}" for k, v in json.loads(params).items() if v is not None)  # None: a default
    return f"{method}({shown})"
