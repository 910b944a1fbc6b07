"""Whether a suite's written report is still current: a fingerprint of everything it is computed from.

The report (leaderboards/<suite>/…) is a function of the suite's latest plan (its file name carries the
digest of its rows), each planned job's result row (a job's row is immutable; a newer one has a later
`finished_at`), the suite's reference CSV, the search selections, the machine that measures the
efficiency view's latencies, and the code that renders it (kdbench's version and the results package's
source, so a changed renderer is never served stale). Computed from the report's own join of the plan
and the results (`views.jobs.load_jobs`), so deciding costs no read of its own; no plot.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from kdbench import paths
from kdbench.store import Store
from kdbench.version import __version__

from .views.jobs import SuiteJobs
from .views.reference import reference_path

MANIFEST = paths.leaderboard("{suite}", "report.json")  # {"fingerprint": …, "paths": {file name: path}}


@cache
def _code_digest() -> str:
    """The results package's source (its renderers, views, statistics)."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def fingerprint(store: Store, suite: str, jobs: SuiteJobs) -> str | None:
    """None when the suite has no recorded plan (the report then reads the rows its runs wrote). `jobs`: the
    suite's plan joined with the results, as the report computes its tables from them."""
    from kdbench.zoo.models.cost import device_tag

    plans = store.list_files(paths.plans(suite), ".parquet")
    if not plans:
        return None
    results = sorted((r["job_id"], r["status"], str(r["finished_at"])) for r in jobs.rows if r["status"] != "pending")
    searches = store.list_files(paths.suite_searches(suite), ".json")  # what the methods view's `chosen_by` reads
    parts = {
        "plan": max(plans), "results": results, "version": __version__, "code": _code_digest(),
        "reference": hashlib.sha256(store.read_bytes(reference_path(suite)) or b"").hexdigest(),
        "searches": [(f, hashlib.sha256(store.read_bytes(f) or b"").hexdigest()) for f in searches],
        "machine": device_tag(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def reusable(store: Store, suite: str, digest: str) -> dict[str, str] | None:
    """The last report's paths if it was written for this fingerprint and every file is still there."""
    data = store.read_bytes(MANIFEST.format(suite=suite))
    if data is None:
        return None
    try:
        manifest = json.loads(data)
    except ValueError:
        return None
    paths = manifest.get("paths") if manifest.get("fingerprint") == digest else None
    if not isinstance(paths, dict) or not all(store.exists(p) for p in paths.values()):
        return None
    return paths
