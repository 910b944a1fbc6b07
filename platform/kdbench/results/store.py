"""Reading and writing result rows and plans in the store.

A worker writes a finished job's row to its own file, results/<id[:2]>/<id>.parquet (a rerun of a
failed job replaces it); files are written whole (see kdbench.store.Store.write_bytes). Compaction
(kdbench/results/compact.py) later merges those files into a few large segments under
results/segments/, because reading 10,000 one-row files costs ~400x more than one 10,000-row file.

Readers see every Parquet file under results/: loose per-job files, segments, and files claimed by a
compaction in progress. A job can transiently have more than one row there (a crash between a
compaction's write and its clean-up, or a failed row compacted before its rerun succeeded); readers
keep each job's row with the latest `finished_at`, so a job is always read as exactly one row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from kdbench import paths
from kdbench.jobs import canonical_json
from kdbench.store import Store
from kdbench.suite.plan import Plan

from .rows import plan_row
from .schema import PLAN_SCHEMA, RESULT_SCHEMA

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
                 columns: list[str] | None = None) -> pa.Table:
    """All result rows (or those of `job_ids`) as one Arrow table with RESULT_SCHEMA, one row per job."""
    wanted = None if job_ids is None else set(job_ids)
    # Only the columns asked for, and the two that decide which of a job's rows is its row.
    read = None if columns is None else list(dict.fromkeys([*columns, "job_id", "finished_at"]))
    for attempt in range(_READ_ATTEMPTS):
        try:
            table = _read_once(store, wanted, read)
            break
        except OSError as e:  # a file compacted away after listing: list again
            if attempt == _READ_ATTEMPTS - 1 or not _vanished(e):
                raise
    table = latest_per_job(table)
    return table.select(columns) if columns is not None else table


def _read_once(store: Store, wanted: set[str] | None, columns: list[str] | None) -> pa.Table:
    files = store.list_files("results", ".parquet")
    if wanted is not None:
        # Loose files are found by name; segments and claimed files are read with a job-id filter.
        files = [f for f in files if not is_loose(f) or f.rsplit("/", 1)[-1][:-8] in wanted]
    if not files:
        return RESULT_SCHEMA.empty_table().select(columns or RESULT_SCHEMA.names)
    ds = pads.dataset([store.path(f) for f in files], schema=RESULT_SCHEMA, format="parquet",
                      filesystem=store.fs)
    if wanted is None:
        return ds.to_table(columns=columns)
    return ds.to_table(columns=columns, filter=pc.field("job_id").isin(pa.array(list(wanted), pa.string())))


def _vanished(e: OSError) -> bool:
    text = str(e).lower()
    return isinstance(e, FileNotFoundError) or any(w in text for w in ("not found", "no such", "does not exist"))


def latest_per_job(table: pa.Table) -> pa.Table:
    """Each job's row with the latest `finished_at` (ties: any — they are copies of one row)."""
    if table.num_rows == 0 or pc.count_distinct(table["job_id"]).as_py() == table.num_rows:
        return table
    order = pc.sort_indices(table, sort_keys=[("job_id", "ascending"), ("finished_at", "descending")])
    table = table.take(order)
    ids = table["job_id"].combine_chunks()
    starts = pc.not_equal(ids[1:], ids[:-1])  # True where a new job id starts
    return table.filter(pa.concat_arrays([pa.array([True]), starts]))


def statuses(store: Store, job_ids: Iterable[str]) -> dict[str, str]:
    """job id -> status, for the jobs among `job_ids` that have a row."""
    t = read_results(store, job_ids, columns=["job_id", "status"])
    return dict(zip(t["job_id"].to_pylist(), t["status"].to_pylist(), strict=True))


def write_plan(store: Store, plan: Plan) -> str:
    """Record the suite's plan (job ids and role names); unchanged plans are not written again."""
    rows = [plan_row(e, plan.suite.name) for e in plan.entries]
    data = _parquet_bytes(pa.Table.from_pylist(rows, schema=PLAN_SCHEMA))
    # Over names too: renaming a model keeps every job id but must show in the leaderboard.
    digest = hashlib.sha256(canonical_json(rows).encode()).hexdigest()[:12]
    existing = store.list_files(paths.plans(plan.suite.name), ".parquet")
    if existing and existing[-1].endswith(f"-{digest}.parquet"):  # the latest plan is this one
        return existing[-1]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    rel = f"{paths.plans(plan.suite.name)}/{stamp}-{digest}.parquet"
    store.write_bytes(rel, data)
    return rel


def read_plan(store: Store, suite: str | None = None) -> pa.Table:
    """The latest plan of `suite` (or of every suite, latest each, when None)."""
    files = store.list_files("plans", ".parquet")
    latest: dict[str, str] = {}
    for f in files:  # plans/<suite>/<stamp>-<digest>.parquet; stamps sort in time order
        name = f.split("/")[1]
        if suite is None or name == suite:
            latest[name] = max(latest.get(name, ""), f)
    if not latest:
        return PLAN_SCHEMA.empty_table()
    return pads.dataset([store.path(f) for f in latest.values()], schema=PLAN_SCHEMA,
                        format="parquet", filesystem=store.fs).to_table()


def suites(store: Store) -> list[str]:
    return sorted({f.split("/")[1] for f in store.list_files("plans", ".parquet")})
