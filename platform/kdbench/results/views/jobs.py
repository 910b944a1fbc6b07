"""A suite's jobs for the study views: its plan's names joined with the results, one dict per job.

The plan gives the names of this suite (a job shared by two suites has one result but its names in
each); the results give the metrics. Every view is computed from these rows, so what a view shows is
what the store holds. Linear in the number of jobs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow.compute as pc

from kdbench.store import Store

from ..store import read_plan, read_results

_SNAPSHOT = re.compile(r"^(?P<name>.+)@(?P<epoch>\d+)$")  # spec.load.snapshot_name: `<teacher>@<epoch>`
METRICS = ["status", "test_acc", "val_acc", "teacher_test_acc", "teacher_params", "student_params",
           "epochs_trained", "stop_epoch", "combine", "dataset", "dataset_params", "recipe", "student_arch",
           "student_arch_params"]


@dataclass(frozen=True)
class SuiteJobs:
    suite: str
    rows: list[dict]  # one per planned job: plan names + result metrics (status 'pending' without a result)

    def by_id(self) -> dict[str, dict]:
        return {r["job_id"]: r for r in self.rows}

    def where(self, keep: Callable[[dict], bool]) -> list[dict]:
        return [r for r in self.rows if keep(r)]


def load_jobs(store: Store, suite: str) -> SuiteJobs:
    plan = read_plan(store, suite)
    if plan.num_rows:
        results = read_results(store, plan["job_id"].to_pylist())
        base = plan.to_pylist()
    else:  # no plan recorded: the rows this suite's runs wrote, with their own names
        results = read_results(store)
        results = results.filter(pc.equal(results["suite"], suite))
        base = results.select(["job_id", "kind", "teacher", "student", "method", "method_params", "chain",
                               "upstream", "seed"]).to_pylist()
    return SuiteJobs(suite, join(base, results.to_pylist()))


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


def ok_acc(rows: Iterable[dict], metric: str = "test_acc") -> dict[int, float]:
    """seed -> metric of the rows that finished ok."""
    return {r["seed"]: r[metric] for r in rows if r["status"] == "ok" and r[metric] is not None}


def failed(rows: Iterable[dict]) -> int:
    return sum(r["status"] in ("failed", "skipped") for r in rows)


def group(rows: Iterable[dict], key: Callable[[dict], tuple]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out
