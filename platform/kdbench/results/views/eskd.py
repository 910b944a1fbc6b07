"""`eskd` view: student accuracy against the teacher's epoch (early-stopped teachers, taken as snapshots
of one run — `<teacher>@<epoch>` — or retrained with `stop_epoch`) and against KD's own stop epoch
(early-stopped KD, kd `stop_epoch`). One row per (student, method, teacher, teacher epoch)."""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store

from .cells import CELL_FIELDS, baselines, cell, dataset_of, mean_of, table
from .jobs import SuiteJobs, group, load_jobs, params_of, snapshot_of

FIELDS = [pa.field("dataset", pa.string()), pa.field("student", pa.string()), pa.field("method", pa.string()),
          pa.field("method_params", pa.string()),
          pa.field("kd_stop_epoch", pa.int64()),  # the method's stop_epoch (ESKD); null: distils every epoch
          pa.field("teacher", pa.string()),  # the teacher's name in the suite, without '@epoch'
          pa.field("teacher_epoch", pa.int64()),  # epochs the teacher had trained when the student used it
          pa.field("teacher_epochs", pa.int64()),  # the teacher's full training
          pa.field("teacher_source", pa.string()),  # snapshot | retrained (stop_epoch) | full
          pa.field("teacher_score", pa.float64()), *CELL_FIELDS]


def _direct_from_one(r: dict) -> bool:
    return r["kind"] == "student" and len(r["chain"]) == 2 and len(r["upstream"]) == 1


def eskd_rows(jobs: SuiteJobs) -> list[dict]:
    by_id = jobs.by_id()
    alone = baselines(jobs.rows)
    rows = jobs.where(_direct_from_one)
    studied = any(snapshot_of(r["teacher"])[1] is not None or params_of(r).get("stop_epoch") is not None
                  or (by_id.get(r["upstream"][0]) or {}).get("stop_epoch") is not None for r in rows)
    if not studied:
        return []
    out = []
    for (student, method, params, source), members in group(
            rows, lambda r: (r["student"], r["method"], r["method_params"], r["teacher"])).items():
        name, epoch = snapshot_of(source)
        t = by_id.get(members[0]["upstream"][0]) or {}
        full = t.get("epochs_trained") or _recipe_epochs(t)
        kind = "snapshot" if epoch is not None else ("retrained" if t.get("stop_epoch") is not None else "full")
        out.append({"dataset": dataset_of(members), "student": student, "method": method, "method_params": params,
                    "kd_stop_epoch": params_of(members[0]).get("stop_epoch"), "teacher": name,
                    "teacher_epoch": epoch if epoch is not None else full, "teacher_epochs": _recipe_epochs(t) or full,
                    "teacher_source": kind, "teacher_score": mean_of(members, "teacher_score"),
                    **cell(members, alone.get(student))})
    out.sort(key=lambda r: (r["student"], r["method"], r["kd_stop_epoch"] or 0, r["teacher"],
                            r["teacher_epoch"] or 0, r["teacher_source"]))
    return out


def _recipe_epochs(teacher_row: dict) -> int | None:
    import json

    recipe = teacher_row.get("recipe")
    return json.loads(recipe)["epochs"] if recipe else None


def eskd(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    return table(eskd_rows(jobs or load_jobs(store, suite)), FIELDS)

