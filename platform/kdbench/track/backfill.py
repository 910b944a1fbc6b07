"""Backfill: make MLflow match the results store for a suite's latest plan (`kdbench sync`).

Used after a tracking-server outage, or to load a store produced elsewhere into a new server. Every
run is made equal to the store: a missing run is created with the job's params, tags, per-epoch
history and final metrics, under one parent run named "sync <time>"; an existing run gets the epochs
it lacks, and its status, final metrics and error tag are set to the row's (a run left FAILED by an
attempt whose successful rerun MLflow never heard of becomes FINISHED).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from kdbench import paths
from kdbench.store import Store

from .tracker import Tracker, points
from .writer import MetricPoint


class TrackingError(RuntimeError):
    pass


def epoch_points(store: Store, job_id: str) -> list[MetricPoint]:
    """The job's per-epoch metrics (step = epoch); none when it has no history (failed, skipped)."""
    data = store.read_bytes(paths.artifact(job_id, paths.HISTORY))
    out: list[MetricPoint] = []
    for i, entry in enumerate(json.loads(data) if data else [], start=1):
        epoch = int(entry.pop("epoch", i))  # the step, not a metric
        out += points(entry, epoch)
    return out


def history_reader(store: Store, job_id: str) -> Callable[[], list[MetricPoint]]:
    return lambda: epoch_points(store, job_id)  # read on the worker, only for runs it creates


def backfill(store: Store, suite: str, tracking_uri: str, artifact_location: str | None = None) -> int:
    """Create the missing MLflow runs of `suite`'s jobs that have a result; returns how many."""
    from kdbench.results.store import read_plan, read_results  # it loads the spec (and torch): ~3 s

    job_ids = read_plan(store, suite)["job_id"].to_pylist()
    rows = read_results(store, job_ids).to_pylist()
    tracker = Tracker(tracking_uri, f"kdbench/{suite}", artifact_location)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    # Lazy: a sync with nothing to do leaves no empty parent run behind.
    tracker.start_suite(f"sync {stamp}", {}, {"kdbench.role": "sync", "kdbench.suite": suite}, lazy=True)
    for row in rows:
        tracker.sync_job(row["job_id"], row, history_reader(store, row["job_id"]), epochs=True)
    if not tracker.close(timeout=None):
        raise TrackingError(f"MLflow backfill of suite {suite!r} at {tracking_uri}: {tracker.failures} "
                            "calls failed (see the kdbench.track warnings); rerun it once MLflow answers")
    return tracker.created
