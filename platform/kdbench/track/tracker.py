"""Tracker: asynchronous, single-writer MLflow logging for one `kdbench run`, in the driver only.

Every public method puts an event on a queue and returns at once; one daemon thread applies the
events in order through one MlflowClient. A failed call is logged and dropped, never raised: MLflow
is for browsing, the results store has everything, and `backfill` repairs MLflow afterwards. An
MLflow server outage makes calls block for minutes, so `close` waits a bounded time and then
leaves the thread behind rather than hanging the driver.
"""

from __future__ import annotations

import logging
import numbers
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .writer import MetricPoint, Writer, now_ms

log = logging.getLogger("kdbench.track")

_STOP = ("stop",)
FLUSH_WINDOW_S = 1.0  # events are gathered this long before a write: per-epoch metrics of many jobs batch up
_LOUD_FAILURES = 3  # warnings per streak of failed calls; the rest go to debug (a down server fails them all)


def points(metrics: dict[str, Any], step: int, timestamp: int | None = None) -> list[MetricPoint]:
    """The numeric values of `metrics` as metric points (bools and text are not metrics)."""
    ts = timestamp or now_ms()
    return [(k, float(v), ts, step) for k, v in metrics.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool)]


def coalesce(events: list[tuple]) -> list[tuple]:
    """Merge each job's log_metrics events into one (one log_batch per job per flush, not one per epoch),
    even when jobs' epochs interleave. A job's other events (start, end, sync) stay in order around its
    metrics: a metrics event after one of them starts a new batch."""
    out: list[tuple] = []
    pending: dict[str, int] = {}  # job id -> index in `out` of its open log_metrics event
    for e in events:
        if e[0] == "log_metrics":
            i = pending.get(e[1])
            if i is None:
                pending[e[1]] = len(out)
                out.append(e)
            else:
                out[i] = ("log_metrics", e[1], out[i][2] + e[2])
        else:
            if len(e) > 1 and isinstance(e[1], str):
                pending.pop(e[1], None)
            out.append(e)
    return out


class Tracker:
    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None = None,
                 order: tuple[str, bool] | None = None) -> None:
        """`order`: (metric, higher is better) the experiment's runs view sorts job runs by (track/links.py)."""
        self._config = (tracking_uri, experiment, artifact_location, order)
        self._queue: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._writer: Writer | None = None  # built on the worker thread by the first event
        self._closed, self._done = False, threading.Event()
        self._failures, self._streak = 0, 0
        self._thread = threading.Thread(target=self._work, name="kdbench-track", daemon=True)
        self._thread.start()

    # -- public API: each call enqueues and returns ---------------------------------------------

    def start_suite(self, run_name: str, params: dict, tags: dict, *, lazy: bool = False) -> None:
        """The parent run (tag kdbench.role=parent unless `tags` says otherwise). With `lazy`, it is
        created only when a child run or log_parent first needs it."""
        self._put("start_parent", run_name, dict(params), dict(tags), lazy)

    def start_job(self, job_id: str, row: dict[str, Any]) -> None:
        self._put("start_job", job_id, dict(row), now_ms())

    def log_epoch(self, job_id: str, metrics: dict[str, float], step: int) -> None:
        self._put("log_metrics", job_id, points(metrics, step))

    def log_history(self, job_id: str, history: list[MetricPoint]) -> None:
        """Per-epoch metrics logged after the fact (e.g. `backfill.epoch_points`), one batch."""
        self._put("log_metrics", job_id, list(history))

    def end_job(self, job_id: str, row: dict[str, Any]) -> None:
        self._put("end_job", job_id, dict(row))

    def sync_job(self, job_id: str, row: dict[str, Any], history: Callable[[], list[MetricPoint]],
                 epochs: bool = False) -> None:
        """Backfill one job: its run is made to match the row (status, final metrics, error); a new run gets
        `history()`; with `epochs`, an existing run gets the epochs it lacks (Writer.sync_job)."""
        self._put("sync_job", job_id, dict(row), history, epochs)

    def log_parent(self, metrics: dict[str, float] | None = None, artifacts: dict[str, bytes] | None = None,
                   tags: dict | None = None, tables: dict[str, Any] | None = None) -> None:
        """`tables`: {artifact file (.json): pandas DataFrame} shown by MLflow's UI as tables."""
        self._put("log_parent", points(metrics or {}, 0), dict(artifacts or {}), dict(tags or {}), dict(tables or {}))

    @property
    def reused_parent(self) -> bool:
        """Whether the suite's parent run was an earlier `kdbench run`'s of the same plan (known once set up)."""
        return self._writer is not None and self._writer.reused_parent

    def run_id(self, job_id: str) -> str | None:
        """The job's run id if the worker already knows it; never waits for it."""
        known = self._writer.runs.get(job_id) if self._writer is not None else None
        return known.run_id if known is not None else None

    @property
    def parent_run_id(self) -> str | None:
        return self._writer.parent_run_id if self._writer is not None else None

    @property
    def created(self) -> int:
        """How many job runs this tracker created (the rest were reused)."""
        return self._writer.created if self._writer is not None else 0

    @property
    def failures(self) -> int:
        return self._failures

    def close(self, timeout: float | None = 60.0, status: str = "FINISHED") -> bool:
        """End the parent run and wait up to `timeout` s (None: forever) for the queue to drain.

        True when every event was applied without error; False on a failure or a timeout (then the
        daemon thread is left behind, still trying, and dies with the process)."""
        if not self._closed:
            self._closed = True
            self._queue.put(("end_parent", status))
            self._queue.put(_STOP)
        if not self._done.wait(timeout):
            log.warning("MLflow logging did not finish within %s s; `kdbench sync` can backfill it", timeout)
            return False
        return self._failures == 0

    # -- the worker thread ------------------------------------------------------------------------

    def _put(self, *event: Any) -> None:
        if self._closed:
            log.debug("tracker closed: dropped %s", event[0])
            return
        self._queue.put(event)

    def _drain(self) -> list[tuple]:
        """The next batch: the first event, and what arrives in the flush window after it (not after a stop)."""
        events = [self._queue.get()]
        deadline = time.monotonic() + FLUSH_WINDOW_S
        while events[-1] is not _STOP:
            try:
                events.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return events
        return events

    def _work(self) -> None:
        while True:
            for event in coalesce(self._drain()):
                if event is _STOP:
                    self._done.set()
                    return
                self._apply(event)

    def _apply(self, event: tuple) -> None:
        name, *args = event
        try:
            if self._writer is None:  # imports MLflow; the writer sets itself up on first use
                self._writer = Writer(*self._config)
            getattr(self._writer, name)(*args)
        except Exception as e:  # logging must never fail training
            self._failed(name, e)
        else:
            if self._streak > _LOUD_FAILURES:
                log.warning("MLflow answers again after %d failed calls", self._streak)
            self._streak = 0

    def _failed(self, name: str, e: Exception) -> None:
        self._failures += 1
        self._streak += 1
        level = logging.WARNING if self._streak <= _LOUD_FAILURES else logging.DEBUG
        log.log(level, "MLflow %s failed, skipped (%s: %s)%s", name, type(e).__name__, str(e)[:500],
                "; further failures are logged at debug level" if self._streak == _LOUD_FAILURES else "",
                exc_info=log.isEnabledFor(logging.DEBUG))
