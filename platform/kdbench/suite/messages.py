"""Pydantic validation errors turned into SpecErrors with a line, a field path and plain words."""

from __future__ import annotations

import typing

from pydantic import BaseModel, ValidationError

from kdbench.registry import suggest

from .errors import Loc, SpecError


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of `loc`, or of its nearest enclosing value that the file spelled out."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _model_at(model: type[BaseModel] | None, loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that owns the key at `loc` (for the list of allowed keys)."""
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _shown(value) -> str:
    """A value as the user wrote it, cut short: an error message stays one readable line."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}… ({len(text):,} characters)"


# Suites are validated as JSON data (kdbench/suite/guards.py); name the types as YAML users know them.
_TYPE_WORDS = {"a valid array": "a valid list", "a valid object": "a mapping", "a valid dictionary": "a mapping"}


def _words(err: dict, model: type[BaseModel] | None, extra_names: list[str]) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        allowed = sorted(set(extra_names) | set(model.model_fields if model else ()))
        return f"unknown key '{key}'{suggest(key, allowed)}; allowed: {', '.join(allowed)}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        value = next(v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le"))
        return f"must be {bounds[kind]} {value} (got {_shown(err['input'])})"
    if kind == "too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else \
            f"needs at least {ctx.get('min_length')} items"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {_shown(err['input'])})"
    if kind == "string_pattern_mismatch":
        return f"{_shown(err['input'])} is not a valid name (letters, digits, '_', '.', '+', '-')"
    msg = err["msg"].removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    if kind.endswith(("_type", "_parsing")):
        for json_word, word in _TYPE_WORDS.items():
            msg = msg.replace(json_word, word)
        msg += f" (got {_shown(err['input'])})"
    return msg


def spec_error(exc: ValidationError, path: str, lines: dict[Loc, int], prefix: Loc = (),
               model: type[BaseModel] | None = None, extra_names: list[str] = ()) -> SpecError:
    """The error that comes first in the file, with a count of the others."""
    errors = exc.errors()

    def where(e):
        loc = prefix + tuple(e["loc"])
        return line_of(lines, loc) or 0, loc

    first = min(errors, key=lambda e: where(e)[0])
    line, loc = where(first)
    owner = _model_at(model, tuple(first["loc"]))
    names = list(extra_names) if owner is model else []
    message = _words(first, owner, names)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return SpecError(path, line, loc, message)
