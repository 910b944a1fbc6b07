"""Reading and writing result rows and plans in the store.

A worker writes a finished job's row to its own file, results/<id[:2]>/<id>.parquet (a rerun of a
failed job replaces it); files are written whole (see kdbench.store.Store.write_bytes). Compaction
(kdbench/results/compact.py) later merges those files into a few large segments under
results/segments/, because reading 10,000 one-row files costs ~400x more than one 10,000-row file.

Readers see every Parquet file under results/: loose per-job files, segments, and files claimed by a
compaction in progress. A job can transiently have more than one row there (a crash between a
compaction's write and its clean-up, or a failed row compacted before its rerun succeeded); readers
keep each job's row with the highest `attempt` (a counter the job's lease holder increments: no clock
decides, so a machine whose clock runs ahead cannot make an old row win), so a job is always read as
exactly one row. A file that cannot be read is skipped and reported (kdbench/results/unreadable.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kdbench import paths
from kdbench.jobs import canonical_json
from kdbench.store import Store
from kdbench.suite.plan import Plan

from .rows import plan_row
from .schema import PLAN_SCHEMA, RESULT_SCHEMA
from .unreadable import read_files, report, vanished

SEGMENTS, CLAIMED = "results/segments", "results/claimed"
_READ_ATTEMPTS = 5  # a compaction may delete a listed file between listing and reading it


def result_path(job_id: str) -> str:
    return paths.result(job_id)


def is_loose(rel: str) -> bool:
    """A per-job file as a worker wrote it (not a segment, not a claimed file)."""
    return not rel.startswith((SEGMENTS + "/", CLAIMED + "/"))


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_result(store: Store, row: dict[str, Any]) -> None:
    table = pa.Table.from_pylist([row], schema=RESULT_SCHEMA)
    store.write_bytes(result_path(row["job_id"]), _parquet_bytes(table))


def read_results(store: Store, job_ids: Iterable[str] | None = None,
                 columns: list[str] | None = None, unreadable: dict[str, str] | None = None) -> pa.Table:
    """All result rows (or those of `job_ids`) as one Arrow table with RESULT_SCHEMA, one row per job.
    Unreadable files are skipped (reported once; listed in `unreadable` when given)."""
    wanted = None if job_ids is None else set(job_ids)
    # Only the columns asked for, and those that decide which of a job's rows is its row.
    read = None if columns is None else list(dict.fromkeys([*columns, *ORDER_COLUMNS]))
    for attempt in range(_READ_ATTEMPTS):
        try:
            table = _read_once(store, wanted, read, unreadable)
            break
        except OSError as e:  # a file compacted away after listing: list again
            if attempt == _READ_ATTEMPTS - 1 or not vanished(e):
                raise
    table = latest_per_job(table)
    return table.select(columns) if columns is not None else table


def _read_once(store: Store, wanted: set[str] | None, columns: list[str] | None,
               unreadable: dict[str, str] | None) -> pa.Table:
    files = store.list_files("results", ".parquet")
    if wanted is not None:
        # Loose files are found by name; segments and claimed files are read with a job-id filter.
        files = [f for f in files if not is_loose(f) or f.rsplit("/", 1)[-1][:-8] in wanted]
    where = None if wanted is None else pc.field("job_id").isin(pa.array(list(wanted), pa.string()))
    return read_files(store, files, RESULT_SCHEMA, columns, where, unreadable)


ORDER_COLUMNS = ("job_id", "attempt", "finished_at")


def latest_per_job(table: pa.Table) -> pa.Table:
    """Each job's row with the highest `attempt`; rows without one (written before schema 3) lose to any
    with one, and among themselves the latest `finished_at` wins (ties: any — they are copies of one row)."""
    if table.num_rows == 0 or pc.count_distinct(table["job_id"]).as_py() == table.num_rows:
        return table
    keys = [("job_id", "ascending"), ("attempt", "descending"), ("finished_at", "descending")]
    order = pc.sort_indices(table, sort_keys=keys)  # nulls sort last
    table = table.take(order)
    ids = table["job_id"].combine_chunks()
    starts = pc.not_equal(ids[1:], ids[:-1])  # True where a new job id starts
    return table.filter(pa.concat_arrays([pa.array([True]), starts]))


def row_attempt(row: dict[str, Any] | None) -> int:
    """A row's attempt counter (0 for no row, or one written before schema 3)."""
    return (row or {}).get("attempt") or 0


def read_loose(store: Store, job_id: str) -> dict[str, Any] | None:
    """The job's own result file's row (one GET), None when absent or unreadable."""
    data = store.read_bytes(result_path(job_id))
    if data is None:
        return None
    try:
        rows = pq.read_table(pa.BufferReader(data)).to_pylist()
    except (pa.ArrowException, OSError):
        return None
    return rows[-1] if rows else None


def statuses(store: Store, job_ids: Iterable[str]) -> dict[str, str]:
    """job id -> status, for the jobs among `job_ids` that have a row."""
    t = read_results(store, job_ids, columns=["job_id", "status"])
    return dict(zip(t["job_id"].to_pylist(), t["status"].to_pylist(), strict=True))


def _plan_digest(rows: list[dict[str, Any]]) -> str:
    # Over names too: renaming a model keeps every job id but must show in the leaderboard.
    return hashlib.sha256(canonical_json(rows).encode()).hexdigest()[:12]


def write_plan(store: Store, plan: Plan) -> str:
    """Record the suite's plan (job ids and role names); an unchanged plan is not written again — once the
    latest plan file is verified to hold exactly these rows (a file is not trusted by its name)."""
    rows = [plan_row(e, plan.suite.name) for e in plan.entries]
    data = _parquet_bytes(pa.Table.from_pylist(rows, schema=PLAN_SCHEMA))
    digest = _plan_digest(rows)
    existing = store.list_files(paths.plans(plan.suite.name), ".parquet")
    if existing and existing[-1].endswith(f"-{digest}.parquet") and _holds(store, existing[-1], digest):
        return existing[-1]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    rel = f"{paths.plans(plan.suite.name)}/{stamp}-{digest}.parquet"
    store.write_bytes(rel, data)
    return rel


def _holds(store: Store, rel: str, digest: str) -> bool:
    data = store.read_bytes(rel)
    try:
        return data is not None and _plan_digest(pq.read_table(pa.BufferReader(data)).to_pylist()) == digest
    except (pa.ArrowException, OSError):
        return False


def read_plan(store: Store, suite: str | None = None, unreadable: dict[str, str] | None = None) -> pa.Table:
    """The latest readable plan of `suite` (or of every suite, latest each, when None); an unreadable
    plan file is skipped (reported once; listed in `unreadable`) for the one before it."""
    files = store.list_files("plans", ".parquet")
    by_suite: dict[str, list[str]] = {}
    for f in files:  # plans/<suite>/<stamp>-<digest>.parquet; stamps sort in time order
        name = f.split("/")[1]
        if suite is None or name == suite:
            by_suite.setdefault(name, []).append(f)
    tables, bad = [], {}
    for versions in by_suite.values():
        for f in sorted(versions, reverse=True):
            found: dict[str, str] = {}
            table = read_files(store, [f], PLAN_SCHEMA, bad=found)
            if not found:
                tables.append(table)
                break
            bad.update(found)
    if unreadable is not None:
        unreadable.update(bad)
    report(store, bad)
    return pa.concat_tables(tables) if tables else PLAN_SCHEMA.empty_table()


def suites(store: Store) -> list[str]:
    return sorted({f.split("/")[1] for f in store.list_files("plans", ".parquet")})
