"""Shared pieces of the method tests: the documented defaults of a method, read from its docstring."""

from __future__ import annotations

import ast
import re
import sys

MARKER = "Params defaults:"


def documented_defaults(cls) -> dict:
    """The `Params defaults: name=value, …` block that ends a method's module docstring, as a dict (values are
    Python literals; `(none)`: no hyperparameters). It may wrap over several lines."""
    doc = sys.modules[cls.__module__].__doc__ or ""
    if MARKER not in doc:
        raise AssertionError(f"{cls.__module__}: its docstring has no final '{MARKER} name=value, …' block")
    text = " ".join(doc.rsplit(MARKER, 1)[1].split())
    if text in ("", "(none)"):
        return {}
    out = {}
    for pair in re.split(r",\s*(?=\w+=)", text):
        name, value = pair.split("=", 1)
        out[name.strip()] = ast.literal_eval(value.strip())
    return out


def actual_defaults(cls) -> dict:
    """`Params()`'s values by field name (not by a serialised alias)."""
    params = cls.Params()
    return {name: getattr(params, name) for name in type(params).model_fields}
