"""Reading and writing result rows and plans in the store, one Parquet file per job.

A job's row lives at results/<id[:2]>/<id>.parquet: a rerun of a failed job replaces it, so a job
never has two rows. Files are written whole (see kdbench.store.Store.write_bytes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from kdbench.spec.job import canonical_json
from kdbench.spec.plan import Plan
from kdbench.store import Store

from .rows import plan_row
from .schema import PLAN_SCHEMA, RESULT_SCHEMA


def result_path(job_id: str) -> str:
    return f"results/{job_id[:2]}/{job_id}.parquet"


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_result(store: Store, row: dict[str, Any]) -> None:
    table = pa.Table.from_pylist([row], schema=RESULT_SCHEMA)
    store.write_bytes(result_path(row["job_id"]), _parquet_bytes(table))


def read_results(store: Store, job_ids: Iterable[str] | None = None,
                 columns: list[str] | None = None) -> pa.Table:
    """All result rows (or those of `job_ids`) as one Arrow table with RESULT_SCHEMA."""
    if job_ids is None:
        files = store.list_files("results", ".parquet")
    else:
        present = set(store.list_files("results", ".parquet"))
        files = [p for p in map(result_path, job_ids) if p in present]
    if not files:
        return RESULT_SCHEMA.empty_table().select(columns or RESULT_SCHEMA.names)
    ds = pads.dataset([store.path(f) for f in files], schema=RESULT_SCHEMA, format="parquet",
                      filesystem=store.fs)
    return ds.to_table(columns=columns)


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
    existing = store.list_files(f"plans/{plan.suite.name}", ".parquet")
    if existing and existing[-1].endswith(f"-{digest}.parquet"):  # the latest plan is this one
        return existing[-1]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    rel = f"plans/{plan.suite.name}/{stamp}-{digest}.parquet"
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
