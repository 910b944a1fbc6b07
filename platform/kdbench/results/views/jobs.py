"""A suite's jobs for the study views: its plan's names joined with the results, one dict per job.

The plan gives the names of this suite (a job shared by two suites has one result but its names in
each); the results give the metrics. Every view is computed from these rows, so what a view shows is
what the store holds. Linear in the number of jobs.

A report joins once (`load_jobs`) and hands the same `SuiteJobs` to every table, plot and page it writes.

Every read of a job's test metric goes through `score` and every "which is better" decision (ranks, the best
member, Pareto fronts) through `higher_is_better`: the one place that knows the metric and its direction.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import pyarrow as pa
import pyarrow.compute as pc

from kdbench.store import Store
from kdbench.tasks import Metric

from ..store import read_plan, read_results

_SNAPSHOT = re.compile(r"^(?P<name>.+)@(?P<epoch>\d+)$")  # spec.load.snapshot_name: `<teacher>@<epoch>`
NAMES = ["job_id", "kind", "teacher", "student", "method", "method_params", "chain", "upstream", "seed"]
METRICS = ["status", "error", "task", "metrics", "test_acc", "val_acc", "teacher_test_acc", "teacher_params",
           "student_params",
           "epochs_trained", "stop_epoch", "combine", "dataset", "dataset_params", "recipe", "student_arch",
           "student_arch_params", "protocol", "finished_at", "finetune_task", "finetune_metric", "finetune_from"]
_COLUMNS = [*NAMES, *METRICS]  # what load_jobs reads of the results


def score(row: dict) -> float | None:
    """The job's primary test metric: its task's (classification: test top-1 accuracy, a fraction)."""
    return row["score"]


def metric_of(rows: Iterable[dict] = ()) -> Metric:
    """The primary metric of these rows' task (the first row that names one; rows written before tasks
    existed are classification)."""
    task = next((r["task"] for r in rows if r.get("task")), None) or "classification"
    return _metric(task)


def higher_is_better(rows: Iterable[dict] = ()) -> bool:
    """Whether a larger `score` is better for these rows (accuracy: yes; RMSE: no). Every ranking, best-of and
    Pareto decision asks this."""
    return metric_of(rows).higher_is_better


@cache
def _metric(task: str) -> Metric:
    from kdbench.tasks import TASKS

    return TASKS.get(task).metric()


def _scores(row: dict) -> None:
    """`score` and `teacher_score`: the primary test metric of the job and of its teacher, from the task's
    metrics (old rows: their accuracy columns)."""
    metrics = row.pop("metrics") or {}
    if not isinstance(metrics, dict):
        metrics = dict(metrics)
    if row["status"] == "pending" or not metrics:
        row["score"], row["teacher_score"] = row["test_acc"], row["teacher_test_acc"]
        return
    name = _metric(row["task"] or "classification").name
    row["score"], row["teacher_score"] = metrics.get(f"test_{name}"), metrics.get(f"teacher_test_{name}")
    if row.get("finetune_metric"):  # a fine-tune job: its task's score, the mean of the metric(s) the suite names
        values = [metrics.get(f"test_{m}") for m in row["finetune_metric"].split("+")]
        row["score"] = None if None in values else sum(values) / len(values)


def better(a: float, b: float, higher: bool) -> bool:
    """`a` strictly better than `b` in the direction `higher` (from `higher_is_better`)."""
    return a > b if higher else a < b


@dataclass(frozen=True)
class SuiteJobs:
    suite: str
    rows: list[dict]  # one per planned job: plan names + result metrics (status 'pending' without a result;
    #                   finished_at in microseconds since the epoch)

    def by_id(self) -> dict[str, dict]:
        return {r["job_id"]: r for r in self.rows}

    def where(self, keep: Callable[[dict], bool]) -> list[dict]:
        return [r for r in self.rows if keep(r)]


def load_jobs(store: Store, suite: str) -> SuiteJobs:
    """The suite's latest plan joined with the results: one read of each (the plan's jobs only)."""
    plan = read_plan(store, suite)
    if plan.num_rows:
        return suite_jobs(suite, read_results(store, plan["job_id"].to_pylist(), columns=_COLUMNS), plan)
    results = read_results(store, columns=[*_COLUMNS, "suite"])  # no plan recorded: this suite's own rows
    return suite_jobs(suite, results.filter(pc.equal(results["suite"], suite)))


def suite_jobs(suite: str, results: pa.Table, plan: pa.Table | None = None) -> SuiteJobs:
    """The join of a plan and result rows already read (without a plan: every row, with its own names)."""
    names = plan if plan is not None and plan.num_rows else results
    with _no_gc():  # 100,000 new lists and dicts would trigger the cyclic collector dozens of times
        return SuiteJobs(suite, join(_columns(names, NAMES), _columns(results, ["job_id", *METRICS])))


def _columns(table: pa.Table, columns: list[str]) -> list[list]:
    """Columns as Python lists (one conversion per column: several times faster than Table.to_pylist on wide
    tables); timestamps as integer microseconds (a datetime per row costs more than the rest together); a
    column the table lacks is all None."""
    out = []
    for c in columns:
        if c not in table.column_names:
            out.append([None] * table.num_rows)
            continue
        col = table.column(c)
        out.append((col.cast(pa.int64()) if pa.types.is_timestamp(col.type) else col).to_pylist())
    return out


_KEYS = [*NAMES, *METRICS]


def join(plan: list[list], results: list[list]) -> list[dict]:
    """One dict per plan row (plan: columns NAMES; results: job_id and METRICS): its names and its result's
    metrics (status 'pending' without one); method_params normalised to canonical JSON."""
    at = {job_id: i for i, job_id in enumerate(results[0])}
    metrics = list(zip(*results[1:], strict=True))
    none = (None,) * len(METRICS)
    canonical: dict[str | None, str] = {}  # a suite has few distinct settings
    out: list[dict] = []
    for names in zip(*plan, strict=True):
        i = at.get(names[0])
        row = dict(zip(_KEYS, names + (none if i is None else metrics[i]), strict=True))
        params = row["method_params"]
        if params not in canonical:
            canonical[params] = canonical_params(params)
        row["method_params"] = canonical[params]
        row["status"] = row["status"] or "pending"
        row["chain"] = row["chain"] or []  # fresh lists from Arrow; [] for a null
        row["upstream"] = row["upstream"] or []
        _scores(row)
        out.append(row)
    return out


@contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def canonical_params(params: str | None) -> str:
    """Method hyperparameters as sorted compact JSON (the plan and the results spell them differently)."""
    return json.dumps(json.loads(params or "{}"), sort_keys=True, separators=(",", ":"))


def params_of(row: dict) -> dict:
    return json.loads(row["method_params"] or "{}")


def snapshot_of(source: str | None) -> tuple[str | None, int | None]:
    """`big@10` -> ('big', 10); `big` -> ('big', None)."""
    if source is None:
        return None, None
    m = _SNAPSHOT.match(source)
    return (m["name"], int(m["epoch"])) if m else (source, None)


def ok_scores(rows: Iterable[dict]) -> dict[int, float]:
    """seed -> `score` of the rows that finished ok."""
    out = {}
    for r in rows:
        if r["status"] == "ok" and (s := score(r)) is not None:
            out[r["seed"]] = s
    return out


def failed(rows: Iterable[dict]) -> int:
    return sum(r["status"] in ("failed", "skipped") for r in rows)


def group(rows: Iterable[dict], key: Callable[[dict], tuple]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out
