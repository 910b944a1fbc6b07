"""A suite's jobs for the study views: its plan's names joined with the results, one dict per job.

The plan gives the names of this suite (a job shared by two suites has one result but its names in
each); the results give the metrics. Every view is computed from these rows, so what a view shows is
what the store holds. Linear in the number of jobs.

A report joins once (`load_jobs`) and hands the same `SuiteJobs` to every table, plot and page it writes.

Every read of a job's test metric goes through `score` and every "which is better" decision (ranks, the best
member, Pareto fronts) through `higher_is_better`: the one place that knows the metric and its direction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from kdbench.store import Store

from ..store import read_plan, read_results

_SNAPSHOT = re.compile(r"^(?P<name>.+)@(?P<epoch>\d+)$")  # spec.load.snapshot_name: `<teacher>@<epoch>`
NAMES = ["job_id", "kind", "teacher", "student", "method", "method_params", "chain", "upstream", "seed"]
METRICS = ["status", "error", "test_acc", "val_acc", "teacher_test_acc", "teacher_params", "student_params",
           "epochs_trained", "stop_epoch", "combine", "dataset", "dataset_params", "recipe", "student_arch",
           "student_arch_params", "finished_at"]


def score(row: dict) -> float | None:
    """The job's primary test metric (today every suite's: test top-1 accuracy, a fraction)."""
    return row["test_acc"]


def higher_is_better(rows: Iterable[dict] = ()) -> bool:
    """Whether a larger `score` is better for these rows (accuracy: yes). Every ranking, best-of and Pareto
    decision asks this, so a metric where lower is better changes it here only."""
    return True


def better(a: float, b: float, higher: bool) -> bool:
    """`a` strictly better than `b` in the direction `higher` (from `higher_is_better`)."""
    return a > b if higher else a < b


@dataclass(frozen=True)
class SuiteJobs:
    suite: str
    rows: list[dict]  # one per planned job: plan names + result metrics (status 'pending' without a result)

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


_COLUMNS = list(dict.fromkeys(NAMES + METRICS))


def suite_jobs(suite: str, results: pa.Table, plan: pa.Table | None = None) -> SuiteJobs:
    """The join of a plan and result rows already read (without a plan: every row, with its own names)."""
    if plan is not None and plan.num_rows:
        return SuiteJobs(suite, join(plan.to_pylist(), results.to_pylist()))
    rows = results.to_pylist()
    return SuiteJobs(suite, join(rows, rows))


def join(plan_rows: Iterable[dict], result_rows: Iterable[dict]) -> list[dict]:
    """Plan rows with their result's metrics; method_params normalised to canonical JSON."""
    results = {r["job_id"]: r for r in result_rows}
    out = []
    for p in plan_rows:
        r = results.get(p["job_id"], {})
        row = {k: p.get(k) for k in ("job_id", "kind", "teacher", "student", "method", "chain", "upstream", "seed")}
        row["method_params"] = canonical_params(p.get("method_params"))
        row.update({k: r.get(k) for k in METRICS})
        row["status"] = r.get("status") or "pending"
        row["chain"] = list(row["chain"] or [])
        row["upstream"] = list(row["upstream"] or [])
        out.append(row)
    return out


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
