"""`teacher-size` view (Cho & Hariharan, "On the Efficacy of Knowledge Distillation", ICCV 2019): for each
(student, method), direct distillation from every teacher ordered by teacher size, with the teacher's own
accuracy and the paired difference against the next smaller teacher — where it stops being positive, a
bigger teacher stopped helping."""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store

from .cells import CELL_FIELDS, baselines, cell, dataset_of, first, mean_of, table, versus, versus_fields
from .jobs import SuiteJobs, group, load_jobs, snapshot_of

FIELDS = [pa.field("dataset", pa.string()), pa.field("student", pa.string()), pa.field("method", pa.string()),
          pa.field("method_params", pa.string()), pa.field("teacher", pa.string()),
          pa.field("teacher_params", pa.int64()), pa.field("teacher_score", pa.float64()),
          *CELL_FIELDS, pa.field("smaller_teacher", pa.string()), *versus_fields("vs_smaller"),
          pa.field("baseline_mean", pa.float64())]


def direct_single(r: dict) -> bool:
    """Distilled directly from one fully trained teacher (no TA, no ensemble, no snapshot)."""
    return (r["kind"] == "student" and len(r["chain"]) == 2 and len(r["upstream"]) == 1
            and snapshot_of(r["teacher"])[1] is None)


def teacher_size_rows(jobs: SuiteJobs) -> list[dict]:
    alone = baselines(jobs.rows)
    out = []
    groups = group(jobs.where(direct_single), lambda r: (r["student"], r["method"], r["method_params"]))
    for (student, method, params), members in sorted(groups.items(), key=lambda kv: kv[0]):
        cells = []
        for (teacher,), rows in group(members, lambda r: (r["teacher"],)).items():
            cells.append((first(rows, "teacher_params"), teacher, rows))
        cells.sort(key=lambda c: (c[0] is None, c[0] or 0, c[1]))
        for i, (size, teacher, rows) in enumerate(cells):
            smaller = cells[i - 1] if i else None
            row = {"dataset": dataset_of(rows), "student": student, "method": method, "method_params": params,
                   "teacher": teacher, "teacher_params": size, "teacher_score": mean_of(rows, "teacher_score"),
                   **cell(rows, alone.get(student)), "smaller_teacher": smaller[1] if smaller else None,
                   **versus("vs_smaller", rows, smaller[2] if smaller else None)}
            row["baseline_mean"] = row["alone_mean"]
            out.append(row)
    return out


def teacher_size(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    return table(teacher_size_rows(jobs or load_jobs(store, suite)), FIELDS)
