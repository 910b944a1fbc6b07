"""A suite's plugins: modules that register its own models, datasets, tasks or methods, found beside the suite
(by name or relative path) or importable by module name, imported once per process in the driver and in every
worker."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys


def import_plugins(entries) -> None:
    """Import each plugin: a module name, or the absolute path of a `.py` file (as `load_suite` resolves a
    suite's `plugins:`; Ray workers and search trials call this with the suite's resolved entries)."""
    for entry in entries:
        if entry.endswith(".py") and os.path.isabs(entry):
            _import_file(entry)
        else:
            importlib.import_module(entry)


def plugin_location(entry: str, folder: str) -> str:
    """Where a `plugins:` entry lives: a path to a `.py` file (relative to the suite's folder) or a plain
    name with a `<name>.py` beside the suite become that file's absolute path; anything else stays a module
    name to import (e.g. `tests.faulty_plugin`)."""
    if entry.endswith(".py") or "/" in entry or os.sep in entry:
        return os.path.abspath(os.path.join(folder, entry))
    beside = os.path.join(folder, entry + ".py")
    if "." not in entry and os.path.isfile(beside):
        return os.path.abspath(beside)
    return entry


def _import_file(path: str) -> None:
    """Import a plugin file once per process, under a module name derived from its path."""
    digest = hashlib.sha256(path.encode()).hexdigest()[:12]
    stem = os.path.splitext(os.path.basename(path))[0]
    name = f"kdbench_plugin_{''.join(c if c.isalnum() else '_' for c in stem)}_{digest}"
    if name in sys.modules:
        return
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def resolve_plugins(check, names: list[str], path: str) -> tuple[str, ...]:
    """The plugins resolved against the suite's folder (see `plugin_location`), each imported."""
    folder = os.path.dirname(os.path.abspath(path))
    resolved = []
    for i, name in enumerate(names):
        entry = plugin_location(name, folder)
        try:
            import_plugins([entry])
        except (Exception, SystemExit) as e:  # any import error (or a plugin's sys.exit) is the user's to see
            why = (str(e).strip().splitlines() or [""])[0][:300]
            raise check.fail(("plugins", i), f"cannot import '{name}': {type(e).__name__}: {why}") from None
        resolved.append(entry)
    return tuple(resolved)
