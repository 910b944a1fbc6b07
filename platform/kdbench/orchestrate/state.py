"""The driver's state for one `kdbench run`: the job graph, the recording of results, the counts.

Every finished, failed or skipped job is recorded here, once: its row goes to the results store
(the source of truth) and its end to the tracker (asynchronously; it never blocks or fails this).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kdbench.results import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, result_row, write_result
from kdbench.store import Store
from kdbench.suite.plan import Plan, PlanEntry

from .dag import JobGraph
from .groups import ReadyPacker


@dataclass
class Counts:
    total: int = 0
    cached: int = 0
    run: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: int = 0  # stopped before finishing (Ctrl-C): no row; the next run resumes them
    tracking_complete: bool = True  # False when MLflow missed something (`kdbench sync` repairs it)
    pruned: list[str] = field(default_factory=list)  # jobs left out: their method cannot work for the pair

    def summary(self) -> str:
        line = f"jobs: {self.total} total, {self.cached} cached, {self.run} run, {self.failed} failed"
        line += f", {self.skipped} skipped" if self.skipped else ""
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

    def __post_init__(self) -> None:
        self.entries = {e.job_id: e for e in self.plan.entries}
        self.graph = JobGraph(self.plan.jobs, self.done)
        self.counts.total = len(self.entries)
        self.counts.cached = len(self.entries) - len(self.graph.pending)
        self.epochs_total = sum(self.entries[j].job.epochs for j in self.graph.pending)
        size = self.plan.suite.resources.jobs_per_trial
        self.packer = ReadyPacker(self.graph, self.plan.jobs, size) if size > 1 else None

    @property
    def suite(self) -> str:
        return self.plan.suite.name

    def next_config(self) -> dict | None:
        """The next trial's config: one job's, or with `jobs_per_trial` a pack's (`job_ids`, `jobs`)."""
        if self.packer is None:
            job_id = self.graph.pop_ready()
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

    def started(self, job_id: str) -> None:
        self.running += 1
        if self.tracker is not None:
            self.tracker.start_job(job_id, result_row(self.entries[job_id], self.suite, status="running"))
        self.on_change(self)

    def epoch(self, job_id: str, metrics: dict[str, float], step: int) -> None:
        if self.tracker is not None:
            self.tracker.log_epoch(job_id, metrics, step)
        self.epochs_at[job_id] = step
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
        self._ended(job_id)
        ok = final is not None
        self._record(job_id, final, STATUS_OK if ok else STATUS_FAILED, error)
        if ok:
            self.counts.run += 1
        else:
            self.counts.failed += 1
        for skipped in self.graph.complete(job_id, ok):
            self._record(skipped, None, STATUS_SKIPPED, f"upstream job {job_id} failed")
            self.counts.skipped += 1
            self.epochs_total -= self.entries[skipped].job.epochs  # will never train
        self.on_change(self)

    def interrupted(self, job_id: str) -> None:
        """A job stopped from outside (the user interrupted the suite): nothing is recorded, so the
        next run of the suite resumes it from its last epoch checkpoint."""
        self.running = max(0, self.running - 1)
        self.epochs_at.pop(job_id, None)
        self.on_change(self)

    def _ended(self, job_id: str) -> None:
        """A job's epochs count as done once it ended (a failed job's are spent, too)."""
        self.epochs_at.pop(job_id, None)
        self.epochs_done += self.entries[job_id].job.epochs

    def close(self) -> None:
        """After Tune returns: every job not resolved by then was interrupted."""
        c = self.counts
        c.interrupted = c.total - c.cached - c.run - c.failed - c.skipped

    def _record(self, job_id: str, final: dict | None, status: str, error: str | None) -> None:
        run_id = self.tracker.run_id(job_id) if self.tracker is not None else None
        row = result_row(self.entries[job_id], self.suite, final, status=status, error=error, mlflow_run_id=run_id)
        write_result(self.store, row)
        if self.tracker is not None:
            self.tracker.end_job(job_id, row)
