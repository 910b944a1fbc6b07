"""The driver's state for one `kdbench run`: the job graph, the recording of results, the counts.

Every finished, failed or skipped job is recorded here, once: its row goes to the results store
(the source of truth) and its end to the tracker (asynchronously; it never blocks or fails this).

A job runs only under its lease (lease.py): a job another driver holds waits aside, and when its lease
comes free the job's own result file is read again — a row newer than the one this driver started
from means the other driver resolved it (counted as `elsewhere`, not run, no MLflow run here).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kdbench.results import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, read_results, result_row, write_result
from kdbench.results.store import read_loose, row_attempt
from kdbench.store import Store, StoreFullError
from kdbench.suite.plan import Plan, PlanEntry

from .dag import JobGraph
from .durations import Durations
from .groups import ReadyPacker, pack_key
from .lease import Leases

POLL_S = 1.0  # how often jobs held by another driver are looked at again


@dataclass
class Counts:
    total: int = 0
    cached: int = 0
    run: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: int = 0  # stopped before finishing (Ctrl-C): no row; the next run resumes them
    elsewhere: int = 0  # resolved by another driver on the same store while this one ran (not run here)
    tracking_complete: bool = True  # False when MLflow missed something (`kdbench sync` repairs it)
    pruned: list[str] = field(default_factory=list)  # jobs left out: their method cannot work for the pair

    def summary(self) -> str:
        line = f"jobs: {self.total} total, {self.cached} cached, {self.run} run, {self.failed} failed"
        line += f", {self.skipped} skipped" if self.skipped else ""
        line += f", {self.elsewhere} done by another driver" if self.elsewhere else ""
        return line + (f", {self.interrupted} interrupted" if self.interrupted else "")


@dataclass
class SuiteRun:
    plan: Plan
    store: Store
    done: set[str]
    tracker: Any = None  # kdbench.track.Tracker, or None for no tracking
    config: Callable[[PlanEntry], dict] | None = None  # the trial config of a job
    on_change: Callable[[SuiteRun], None] = lambda run: None  # progress display hook
    counts: Counts = field(default_factory=Counts)
    running: int = 0
    # Progress in epochs, for the ETA: each running job's last reported epoch, and the epochs of every job that
    # was to run (its init stage not counted: the estimate is of the recipe's epochs).
    epochs_at: dict[str, int] = field(default_factory=dict)
    epochs_done: int = 0  # epochs of the jobs that ended in this run
    started_at: float = field(default_factory=lambda: time.monotonic())
    # job id -> the `attempt` of its latest row when this driver started (None: read here)
    attempts: dict[str, int] | None = None
    leases: Leases | None = None  # None: leases on the store, made here
    abort: StoreFullError | None = None  # set when the store is full: Tune stops every trial (tune_run.py)
    slots: int = 1  # jobs the cluster can run at once (tune_run.py sets it): `jobs_per_trial: auto` packs by it

    def __post_init__(self) -> None:
        self.entries = {e.job_id: e for e in self.plan.entries}
        self.graph = JobGraph(self.plan.jobs, self.done)
        self.counts.total = len(self.entries)
        self.counts.cached = len(self.entries) - len(self.graph.pending)
        self.epochs_total = sum(self.entries[j].job.epochs for j in self.graph.pending)
        if self.attempts is None:
            t = read_results(self.store, self.graph.pending, columns=["job_id", "attempt"])
            self.attempts = {j: a or 0 for j, a in zip(t["job_id"].to_pylist(), t["attempt"].to_pylist(), strict=True)}
        if self.leases is None:
            self.leases = Leases(self.store)
        self.waiting: set[str] = set()  # ready jobs whose lease another driver holds
        self._claimed: deque[str] = deque()  # waiting jobs whose lease came to this driver
        self._polled = 0.0
        res = self.plan.suite.resources
        self._began: dict[str, tuple[float, int]] = {}  # running job -> (its trial's start, jobs in that trial)
        self.durations = None
        if res.jobs_per_trial == "auto":
            self.durations = Durations(_described(self.plan), res.cpus, res.gpus, pack_key)
            self.packer = ReadyPacker(self, self.plan.jobs, None, self.durations, lambda: self.slots)
        else:
            self.packer = ReadyPacker(self, self.plan.jobs, res.jobs_per_trial) if res.jobs_per_trial > 1 else None

    # -- leases: which ready job this driver may run ------------------------------------------------

    def pop_ready(self) -> str | None:
        """The next ready job whose lease this driver now holds; jobs another driver holds wait aside."""
        if self.waiting and time.monotonic() - self._polled >= POLL_S:
            self._polled = time.monotonic()
            for job_id in sorted(self.waiting):
                if self._claim(job_id):
                    self._claimed.append(job_id)
        if self._claimed:
            return self._claimed.popleft()
        while (job_id := self.graph.pop_ready()) is not None:
            if self._claim(job_id):
                return job_id
        return None

    def _claim(self, job_id: str) -> bool:
        """Take the job's lease; False when another driver holds it (it waits) or has resolved it."""
        if not self.leases.acquire(job_id):
            self.waiting.add(job_id)
            return False
        self.waiting.discard(job_id)
        row = read_loose(self.store, job_id)
        if row_attempt(row) <= self.attempts.get(job_id, 0):
            return True
        self.leases.release(job_id)  # another driver recorded it after this one looked: theirs
        self.attempts[job_id] = row_attempt(row)
        skipped = self.graph.complete(job_id, row["status"] == STATUS_OK)
        self.counts.elsewhere += 1 + len(skipped)  # their row, and their dependants' skipped rows
        self.epochs_total -= sum(self.entries[j].job.epochs for j in (job_id, *skipped))  # not for this driver
        self.on_change(self)
        return False

    @property
    def suite(self) -> str:
        return self.plan.suite.name

    def next_config(self) -> dict | None:
        """The next trial's config: one job's, or when packed (`jobs_per_trial`) a pack's (`job_ids`, `jobs`)."""
        if self.packer is None:
            job_id = self.pop_ready()
            return None if job_id is None else self.config(self.entries[job_id])
        ids = self.packer.take()
        if len(ids) <= 1:
            return self.config(self.entries[ids[0]]) if ids else None
        configs = [self.config(self.entries[i]) for i in ids]
        return {**configs[0], "job_ids": ids, "jobs": [c["job"] for c in configs]}

    def replay_history(self, job_id: str) -> None:
        """Per-epoch metrics of a job that ran in a pack (it reports only at its end) to the tracker."""
        if self.tracker is None:
            return
        from kdbench.track.backfill import epoch_points

        self.tracker.log_history(job_id, epoch_points(self.store, job_id))

    def started(self, job_id: str, pack: int = 1) -> None:
        """The job's trial started, with `pack` jobs in it."""
        self.running += 1
        self._began[job_id] = (time.monotonic(), pack)
        if self.tracker is not None:
            self.tracker.start_job(job_id, result_row(self.entries[job_id], self.suite, status="running"))
        self.on_change(self)

    def epoch(self, job_id: str, metrics: dict[str, float], step: int) -> None:
        if self.tracker is not None:
            self.tracker.log_epoch(job_id, metrics, step)
        self.epochs_at[job_id] = step
        if self.durations is not None and metrics.get("epoch_seconds"):
            self.durations.epoch(self.entries[job_id].job, metrics["epoch_seconds"])
        self.on_change(self)

    def running_jobs(self) -> list[tuple[str, int, int]]:
        """(label, epoch, epochs) of the jobs that reported an epoch and have not ended, teachers first."""
        out = []
        for job_id, epoch in self.epochs_at.items():
            e = self.entries[job_id]
            label = e.student if e.job.kind in ("teacher", "pretrained") else f"{e.job.method.name} {e.student}"
            out.append((f"{label} s{e.job.seed}", epoch, e.job.epochs, e.job.kind != "teacher"))
        return [(label, epoch, epochs) for label, epoch, epochs, _ in sorted(out, key=lambda x: x[3])]

    def eta_seconds(self) -> float | None:
        """Time left at the rate epochs were done so far (None until the first epoch is reported)."""
        done = self.epochs_done + sum(min(e, self.entries[j].job.epochs) for j, e in self.epochs_at.items())
        elapsed = time.monotonic() - self.started_at
        if done <= 0 or elapsed <= 0:
            return None
        return max(0.0, (self.epochs_total - done) * elapsed / done)

    def finished(self, job_id: str, final: dict | None, error: str | None) -> None:
        """Record a job's end: `final` metrics when it succeeded, else the error that failed it."""
        self.running = max(0, self.running - 1)
        began = self._began.pop(job_id, None)
        if self.durations is not None and began is not None and final is not None:  # measured: later packs use it
            self.durations.finished(self.entries[job_id].job, (time.monotonic() - began[0]) / began[1])
        if job_id in self.leases.lost:  # another driver took it over (this one stalled): its outcome counts
            self.leases.release(job_id)
            self.waiting.add(job_id)
            self.on_change(self)
            return
        self._ended(job_id)
        ok = final is not None
        try:
            self._record(job_id, final, STATUS_OK if ok else STATUS_FAILED, error)
        except StoreFullError as e:  # nothing more can be recorded: stop the suite, this job stays pending
            self.store_full(job_id, e)
            return
        self.leases.release(job_id)
        if ok:
            self.counts.run += 1
        else:
            self.counts.failed += 1
        for skipped in self.graph.complete(job_id, ok):
            self._record(skipped, None, STATUS_SKIPPED, f"upstream job {job_id} failed")
            self.counts.skipped += 1
            self.epochs_total -= self.entries[skipped].job.epochs  # will never train
        self.on_change(self)

    def store_full(self, job_id: str, error: StoreFullError) -> None:
        """A write found the store's disk full: the suite stops (one line); the job has no row, so the next
        run resumes it."""
        self.abort = self.abort or error
        self.interrupted(job_id)

    def interrupted(self, job_id: str) -> None:
        """A job stopped from outside (the user interrupted the suite): nothing is recorded, so the
        next run of the suite resumes it from its last epoch checkpoint."""
        self.running = max(0, self.running - 1)
        self.epochs_at.pop(job_id, None)
        self._began.pop(job_id, None)
        self.leases.release(job_id)
        self.on_change(self)

    def _ended(self, job_id: str) -> None:
        """A job's epochs count as done once it ended (a failed job's are spent, too)."""
        self.epochs_at.pop(job_id, None)
        self.epochs_done += self.entries[job_id].job.epochs

    def close(self) -> None:
        """After Tune returns: every job not resolved by then was interrupted; every lease is given back."""
        self.leases.close()
        c = self.counts
        c.interrupted = c.total - c.cached - c.run - c.failed - c.skipped - c.elsewhere

    def _record(self, job_id: str, final: dict | None, status: str, error: str | None) -> None:
        run_id = self.tracker.run_id(job_id) if self.tracker is not None else None
        attempt = self.attempts[job_id] = self.attempts.get(job_id, 0) + 1  # one more than any row before
        row = result_row(self.entries[job_id], self.suite, final, status=status, error=error, mlflow_run_id=run_id,
                         attempt=attempt)
        write_result(self.store, row)
        if self.tracker is not None:
            self.tracker.end_job(job_id, row)


def _described(plan: Plan) -> tuple[tuple[int, ...], int, int] | None:
    """The dataset's (input shape, classes, training samples), None when it cannot tell without its data."""
    from kdbench.zoo.datasets import DATASETS

    dataset = plan.suite.dataset
    try:
        described = DATASETS.get(dataset.name).params(**dataset.params).describe()
    except Exception:  # e.g. a folder that is only on the cluster's nodes: measured times only
        return None
    return None if described is None else (tuple(described[0]), described[1], described[2])
