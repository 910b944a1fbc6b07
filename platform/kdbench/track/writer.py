"""The MLflow calls behind Tracker, all made on its one worker thread (never concurrently).

Runs are found by the tag kdbench.job_id, loaded once per writer with one paginated search, so a
restarted driver or a backfill reuses a job's run instead of creating a second one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .fields import MAX_PARAM_VALUE, MAX_TAG_VALUE, final_metrics, key, run_fields, run_name, text
from .links import RUNS_VIEW_TAG, runs_view

log = logging.getLogger("kdbench.track")

JOB_TAG, ROLE_TAG, ERROR_TAG = "kdbench.job_id", "kdbench.role", "kdbench.error"
# A suite's parent run is one per plan (the digest of its job ids): a rerun of the same plan updates it.
PLAN_TAG, RUNS_TAG, NOTE_TAG = "kdbench.plan", "kdbench.driver_runs", "mlflow.note.content"
# MLflow 3's UI opens an experiment by its kind: without it, on the GenAI "Traces" page with a question.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
PARENT_TAG, RUN_NAME_TAG = "mlflow.parentRunId", "mlflow.runName"
MAX_ERROR = 5000
TERMINAL = ("FINISHED", "FAILED", "KILLED")
PAGE = 2000  # runs per search page; 10k runs took ~9 s to search here, so one load per writer
BATCH_METRICS, BATCH_PARAMS_TAGS = 1000, 100  # MLflow's per-request log_batch limits
MetricPoint = tuple[str, float, int, int]  # (key, value, timestamp ms, step)


@dataclass
class KnownRun:
    run_id: str
    status: str
    params: set[str] = field(default_factory=set)
    tags: dict[str, str] = field(default_factory=dict)  # their values, to send only those that change
    metrics: dict[str, float] = field(default_factory=dict)  # latest values, to skip re-logging them

    @classmethod
    def of(cls, run) -> KnownRun:
        return cls(run.info.run_id, run.info.status, set(run.data.params), dict(run.data.tags),
                   dict(run.data.metrics))


def _ms(when: dt.datetime | None) -> int | None:
    return int(when.timestamp() * 1000) if when is not None else None


def now_ms() -> int:
    return _ms(dt.datetime.now(dt.UTC))


def _chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class Writer:
    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None,
                 order: tuple[str, bool] | None = None) -> None:
        # Imported here, on the worker thread: importing MLflow takes ~1 s the driver need not wait for.
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param, RunTag

        from .uri import create_sqlite_atomically

        create_sqlite_atomically(tracking_uri)  # an embedded database: never left half-migrated

        self._Metric, self._Param, self._RunTag = Metric, Param, RunTag
        self.client = MlflowClient(tracking_uri)  # for a server URI this makes no request yet
        self._experiment_spec = (experiment, artifact_location)
        self._order = order  # (metric, higher is better): the runs view the experiment links to
        self.experiment_id: str | None = None
        self.runs: dict[str, KnownRun] = {}
        self.parent_run_id: str | None = None
        self._pending_parent: tuple[str, dict, dict] | None = None
        self.created = 0  # job runs this writer created
        self.reused_parent = False  # the parent run is an earlier `kdbench run`'s of the same plan

    def _ready(self) -> str:
        """The experiment id, setting up on first use (and again after a failed setup, e.g. server down)."""
        if self.experiment_id is None:
            experiment_id = self._experiment(*self._experiment_spec)
            self.runs = self._load_runs(experiment_id)
            self.experiment_id = experiment_id
        return self.experiment_id

    def _experiment(self, name: str, artifact_location: str | None) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                experiment_id = self.client.create_experiment(name, artifact_location=artifact_location,
                                                              tags={KIND_TAG: KIND, NOTE_TAG: _EXPERIMENT_NOTE})
                self._link_runs_view(experiment_id, {})
                return experiment_id
            except Exception:  # another driver created it in between
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":  # a deleted name blocks creating a new one: bring it back
            self.client.restore_experiment(exp.experiment_id)
        if exp.tags.get(KIND_TAG) is None:  # made before kdbench set its kind
            self.client.set_experiment_tag(exp.experiment_id, KIND_TAG, KIND)
        self._link_runs_view(exp.experiment_id, exp.tags)
        return exp.experiment_id

    def _link_runs_view(self, experiment_id: str, tags: dict) -> None:
        """The runs view (job runs, best first) as a tag and as a link in the experiment's description."""
        if self._order is None:
            return
        view = runs_view(experiment_id, *self._order)
        if tags.get(RUNS_VIEW_TAG) != view:
            self.client.set_experiment_tag(experiment_id, RUNS_VIEW_TAG, view)
            note = f"{_EXPERIMENT_NOTE}\n\n[The job runs, best {self._order[0]} first]({view})"
            self.client.set_experiment_tag(experiment_id, NOTE_TAG, note)

    def _load_runs(self, experiment_id: str) -> dict[str, KnownRun]:
        runs: dict[str, KnownRun] = {}
        token = None
        while True:
            page = self.client.search_runs([experiment_id], f"tags.`{JOB_TAG}` LIKE '%'",
                                           max_results=PAGE, order_by=["attributes.start_time ASC"],
                                           page_token=token)
            for run in page:  # oldest first: should a job have two runs, the first one wins
                runs.setdefault(run.data.tags[JOB_TAG], KnownRun.of(run))
            token = page.token
            if not token:
                return runs

    def _log_batch(self, run_id: str, metrics: Iterable[MetricPoint] = (), params: dict | None = None,
                   tags: dict | None = None) -> None:
        ms = _chunks([self._Metric(k, v, t, s) for k, v, t, s in metrics], BATCH_METRICS)
        ps = _chunks([self._Param(k, v) for k, v in (params or {}).items()], BATCH_PARAMS_TAGS)
        ts = _chunks([self._RunTag(k, v) for k, v in (tags or {}).items()], BATCH_PARAMS_TAGS)
        for i in range(max(len(ms), len(ps), len(ts))):
            part = [c[i] if i < len(c) else () for c in (ms, ps, ts)]
            self.client.log_batch(run_id, metrics=part[0], params=part[1], tags=part[2], synchronous=True)

    # -- the parent run -------------------------------------------------------------------------

    def start_parent(self, name: str, params: dict, tags: dict, lazy: bool) -> None:
        self._pending_parent = (name, params, tags)  # kept until created: a failed attempt is retried
        if not lazy:
            self._parent()

    def _parent(self) -> str | None:
        """The parent run's id, creating it now if its creation was deferred; a parent of the same plan (tag
        kdbench.plan) is reused and says how many drivers ran it, rather than one more parent per run."""
        if self._pending_parent is not None:
            name, params, tags = self._pending_parent
            tags = {ROLE_TAG: "parent", **tags}
            reused = self._plan_parent(tags.get(PLAN_TAG))
            if reused is None:
                run = self.client.create_run(self._ready(), tags=_texts({**tags, RUNS_TAG: 1}), run_name=name)
                self.parent_run_id = run.info.run_id
                self._log_batch(self.parent_run_id, params=_params(params))
            else:
                self.parent_run_id, runs = reused.info.run_id, int(reused.data.tags.get(RUNS_TAG, "1")) + 1
                self.reused_parent = True
                self.client.update_run(self.parent_run_id, status="RUNNING")
                note = (f"kdbench run of this plan #{runs}, at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}:"
                        " the same parent run, updated (metrics and leaderboards are the latest run's)")
                self._log_batch(self.parent_run_id, tags=_texts({**tags, RUNS_TAG: runs, NOTE_TAG: note}))
            self._pending_parent = None
        return self.parent_run_id

    def _plan_parent(self, plan: str | None):
        """The experiment's parent run of this plan, if an earlier `kdbench run` made one (oldest first)."""
        if not plan:
            return None
        found = self.client.search_runs([self._ready()], f"tags.`{ROLE_TAG}` = 'parent' and tags.`{PLAN_TAG}` = "
                                        f"'{plan}'", max_results=1, order_by=["attributes.start_time ASC"])
        return found[0] if found else None

    def log_parent(self, metrics: list[MetricPoint], artifacts: dict[str, bytes], tags: dict,
                   tables: dict[str, Any] | None = None) -> None:
        """Metrics, tags, files, and `tables` ({artifact file: pandas DataFrame}) logged with `log_table`, which
        MLflow's UI shows as a table (in the run's artifacts and the experiment's evaluation view)."""
        run_id = self._parent()
        if run_id is None:
            log.warning("no parent run to log leaderboards to: start_suite was not called or failed")
            return
        self._log_batch(run_id, metrics, tags=_texts(tags))
        for name, frame in (tables or {}).items():
            self.client.log_table(run_id, data=frame, artifact_file=name)
        with tempfile.TemporaryDirectory(prefix="kdbench-mlflow-") as tmp:
            for rel, data in artifacts.items():
                path = os.path.join(tmp, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
                self.client.log_artifact(run_id, path, os.path.dirname(rel) or None)

    def end_parent(self, status: str) -> None:
        if self.parent_run_id is not None:  # a lazy parent nobody needed is never created
            self.client.set_terminated(self.parent_run_id, status)

    # -- job runs ---------------------------------------------------------------------------------

    def _ensure(self, job_id: str, row: dict[str, Any], start_time: int | None) -> tuple[KnownRun, dict, dict]:
        """The job's run, created or reused, and what it still lacks: the params not logged yet (params
        are immutable) and the tags whose value differs from the run's (a reused run is re-parented).
        The caller logs them with its own batch: a job's end is then one log_batch, not two."""
        experiment_id = self._ready()
        params, tags = run_fields(row)
        tags = {**tags, ROLE_TAG: "job", RUN_NAME_TAG: run_name(row)}
        if (parent := self._parent()) is not None:
            tags[PARENT_TAG] = parent
        known = self.runs.get(job_id)
        if known is None:
            run = self.client.create_run(experiment_id, start_time=start_time, tags=tags,
                                         run_name=run_name(row))
            known = self.runs[job_id] = KnownRun(run.info.run_id, run.info.status, tags=dict(tags))
            self.created += 1
        return (known, {k: v for k, v in params.items() if k not in known.params},
                {k: v for k, v in tags.items() if known.tags.get(k) != v})

    def _log_fields(self, known: KnownRun, metrics: list[MetricPoint] = (), params: dict | None = None,
                    tags: dict | None = None) -> None:
        """One log_batch (split only at MLflow's limits); the run's known fields follow once it succeeded."""
        self._log_batch(known.run_id, metrics, params, tags)
        known.params |= set(params or {})
        known.tags.update(tags or {})
        known.metrics.update((k, v) for k, v, _, _ in metrics)

    def start_job(self, job_id: str, row: dict[str, Any], start_time: int) -> None:
        known, params, tags = self._ensure(job_id, row, start_time)
        self._log_fields(known, params=params, tags=tags)
        if known.status != "RUNNING":
            self.client.update_run(known.run_id, status="RUNNING")
            known.status = "RUNNING"

    def log_metrics(self, job_id: str, points: list[MetricPoint]) -> None:
        self._ready()
        known = self.runs.get(job_id)
        if known is None:  # its start_job failed; end_job will still create the run
            log.debug("no MLflow run for job %s: dropped %d metric values", job_id, len(points))
            return
        self._log_fields(known, points)

    def end_job(self, job_id: str, row: dict[str, Any]) -> None:
        end = _end_ms(row)
        self._finish(*self._ensure(job_id, row, _start_ms(row, end)), row, end)

    def sync_job(self, job_id: str, row: dict[str, Any], history: Callable[[], list[MetricPoint]],
                 epochs: bool = False) -> None:
        """Make the job's run equal to its row: create it (with its history) if missing; an ended run whose
        status, final metrics or error differ from the row is updated (a job that failed, then succeeded
        while MLflow was unreachable, becomes FINISHED). With `epochs` (`kdbench sync`), the epochs the
        run lacks are logged too (one metric-history request per run)."""
        self._ready()  # before the lookup: an unloaded map would look like a missing run
        known = self.runs.get(job_id)
        missing: list[MetricPoint] = []
        if known is not None and epochs:
            missing = self._missing_epochs(known, history())
        if known is not None and known.status in TERMINAL and not missing and self._matches(known, row):
            return
        end = _end_ms(row)
        new = known is None
        known, params, tags = self._ensure(job_id, row, _start_ms(row, end))
        if new or (not known.metrics and not epochs):  # a reused run has the epochs it logged before
            missing = history()
        if missing:
            self._log_fields(known, missing)
        # An existing run may hold newer values than the row's end (a failed attempt's): log the row's now.
        self._finish(known, params, tags, row, end, None if new else now_ms())

    def _matches(self, known: KnownRun, row: dict[str, Any]) -> bool:
        """The ended run says what the row says: its status, error and final-only metrics (a run's latest
        `val_*`/`train_*` value is its last epoch's, which the final value need not equal)."""
        status = "FINISHED" if row["status"] == "ok" else "FAILED"
        error = text(row["error"], MAX_ERROR) if row.get("error") else None
        finals = {k: v for k, v in final_metrics(row).items() if not k.startswith(("val_", "train_"))}
        return (known.status == status and known.tags.get(ERROR_TAG) == error
                and all(known.metrics.get(k) == v for k, v in finals.items()))

    def _missing_epochs(self, known: KnownRun, points: list[MetricPoint]) -> list[MetricPoint]:
        """The history's points at the epochs (steps) the run has not got, judged on one per-epoch metric."""
        if not points:
            return []
        have = {m.step for m in self.client.get_metric_history(known.run_id, points[0][0])}
        return [p for p in points if p[3] not in have]

    def _finish(self, known: KnownRun, params: dict, tags: dict, row: dict[str, Any], end: int,
                logged_at: int | None = None) -> None:
        """Missing params, changed tags, final metrics (those not already logged with the same value) and the
        error tag in one batch, then the terminal status."""
        finals = {k: v for k, v in final_metrics(row).items() if known.metrics.get(k) != v}
        if row.get("error"):
            error = text(row["error"], MAX_ERROR)
            if known.tags.get(ERROR_TAG) != error:
                tags = {**tags, ERROR_TAG: error}
        elif ERROR_TAG in known.tags:  # a rerun succeeded: the old error no longer applies
            self.client.delete_tag(known.run_id, ERROR_TAG)
            known.tags.pop(ERROR_TAG)
        self._log_fields(known, [(k, v, logged_at or end, 0) for k, v in finals.items()], params, tags)
        status = "FINISHED" if row["status"] == "ok" else "FAILED"
        self.client.set_terminated(known.run_id, status, end_time=end)
        known.status = status


_EXPERIMENT_NOTE = ("A kdbench suite: one run per job (teachers, students alone, distilled students), tagged "
                    "kdbench.*, under the suite's parent run, whose artifacts hold the leaderboard (table, page, "
                    "plots). The results store is the source of truth; `kdbench sync` makes MLflow equal to it.")


def _end_ms(row: dict[str, Any]) -> int:
    return _ms(row.get("finished_at")) or now_ms()


def _start_ms(row: dict[str, Any], end: int) -> int:
    return end - int(1000 * (row.get("wall_seconds") or 0))


def _params(d: dict) -> dict[str, str]:
    return {key(k): text(v, MAX_PARAM_VALUE) for k, v in d.items() if v is not None}


def _texts(d: dict) -> dict[str, str]:
    return {k: text(v, MAX_TAG_VALUE) for k, v in d.items() if v is not None}
