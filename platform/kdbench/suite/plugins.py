"""A suite's plugins: modules that register its own models, datasets, tasks or methods, found beside the suite
(by name or relative path) or importable by module name, imported once per process in the driver and in every
worker."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from functools import lru_cache


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


def component_code(kind: str, name: str) -> str | None:
    """The digest of the source of the plugin module(s) defining a registered component (`kind`: "method",
    "model" or "dataset"; a dataset's includes its task's), or None when kdbench itself defines them.

    It enters the job's identity (`Component.code`), so a job whose plugin code was edited is a new job.
    What the digest covers: the file of the module that registers the component (a method's class, an
    architecture's build function, a dataset's loader, a task's class). Code that module imports from other
    files of the user's is not covered: rerun such jobs on purpose with `kdbench run --rerun`."""
    from kdbench.methods import METHODS
    from kdbench.tasks import TASKS
    from kdbench.zoo.datasets import DATASETS
    from kdbench.zoo.models import ARCHS

    if kind == "method":
        defining = [METHODS.get(name)]
    elif kind == "model":
        defining = [ARCHS.get(name).build]
    elif kind == "dataset":
        entry = DATASETS.get(name)
        defining = [entry.load, TASKS.get(entry.params.task)]
    else:
        raise ValueError(f"unknown component kind {kind!r}")
    files = sorted({f for f in map(_plugin_file, defining) if f is not None})
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(_file_digest(f).encode())
    return digest.hexdigest()[:16]


def _plugin_file(obj) -> str | None:
    """The source file of the module defining `obj`, None for kdbench's own modules (or a module without a
    file, e.g. one built in memory)."""
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    if module is None or module.__name__ == "kdbench" or module.__name__.startswith("kdbench."):
        return None
    return getattr(module, "__file__", None)


@lru_cache(maxsize=256)
def _file_digest(path: str) -> str:
    """A source file's SHA-256 (read once per process: a suite's load asks once per component)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
