"""`failures`: the suite's failed and skipped jobs with their errors (pending jobs have not failed, so they are
not here), ordered by status, kind, student, teacher, method and seed. Not a study view (no cells): a table of
the leaderboard page."""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store

from .jobs import SuiteJobs, load_jobs

FIELDS = [pa.field("job_id", pa.string()), pa.field("kind", pa.string()), pa.field("student", pa.string()),
          pa.field("teacher", pa.string()), pa.field("method", pa.string()), pa.field("seed", pa.int64()),
          pa.field("status", pa.string()), pa.field("error", pa.string())]
_ORDER = ["status", "kind", "student", "teacher", "method", "seed"]


def failures_rows(jobs: SuiteJobs) -> list[dict]:
    rows = jobs.where(lambda r: r["status"] in ("failed", "skipped"))
    return sorted(rows, key=lambda r: [(r[k] is None, r[k] if r[k] is not None else "") for k in _ORDER])


def failures(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    rows = failures_rows(jobs or load_jobs(store, suite))
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in FIELDS} for r in rows], schema=pa.schema(FIELDS))
