"""`ensembles` view: a student distilled from an ensemble teacher (arithmetic or geometric mean of the
members' distributions) against the same student distilled from each member alone, with the paired
difference against the best single member (by mean score, in the metric's direction)."""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store

from .cells import CELL_FIELDS, baselines, cell, dataset_of, first, mean_of, table, versus, versus_fields
from .jobs import SuiteJobs, better, group, higher_is_better, load_jobs

FIELDS = [pa.field("dataset", pa.string()), pa.field("student", pa.string()), pa.field("method", pa.string()),
          pa.field("method_params", pa.string()), pa.field("teacher", pa.string()),
          pa.field("combine", pa.string()),  # arithmetic | geometric; null for a single teacher
          pa.field("members", pa.string()), pa.field("teacher_score", pa.float64()), *CELL_FIELDS,
          pa.field("best_single", pa.string()), *versus_fields("vs_best_single")]


def ensembles_rows(jobs: SuiteJobs) -> list[dict]:
    names = {r["job_id"]: r["student"] for r in jobs.rows if r["kind"] == "teacher"}
    direct = jobs.where(lambda r: r["kind"] == "student" and len(r["chain"]) == 2 and "@" not in (r["teacher"] or ""))
    if not any(len(r["upstream"]) > 1 for r in direct):
        return []
    alone = baselines(jobs.rows)
    higher = higher_is_better(jobs.rows)
    out = []
    for (student, method, params), members in group(direct, lambda r: (r["student"], r["method"],
                                                                       r["method_params"])).items():
        cells = group(members, lambda r: (r["teacher"],))
        singles = {t: rows for (t,), rows in cells.items() if len(rows[0]["upstream"]) == 1}
        for (teacher,), rows in sorted(cells.items(), key=lambda kv: (len(kv[1][0]["upstream"]) == 1, kv[0])):
            ups = [names.get(u, u) for u in rows[0]["upstream"]]
            row = {"dataset": dataset_of(rows), "student": student, "method": method, "method_params": params,
                   "teacher": teacher, "combine": first(rows, "combine") if len(ups) > 1 else None,
                   "members": " + ".join(ups) if len(ups) > 1 else None,
                   "teacher_score": mean_of(rows, "teacher_score"), **cell(rows, alone.get(student))}
            mine = {m: singles[m] for m in ups if m in singles} if len(ups) > 1 else {}
            best = _best(mine, higher)
            row["best_single"] = best
            row.update(versus("vs_best_single", rows, mine[best] if best else None))
            out.append(row)
    return out


def _best(members: dict[str, list[dict]], higher: bool) -> str | None:
    """The member with the best mean (the first of equals; a member without a mean only when none has one)."""
    best, top = None, None
    for name, rows in members.items():
        mean = cell(rows, None)["mean"]
        if best is None or (mean is not None and (top is None or better(mean, top, higher))):
            best, top = name, mean
    return best


def ensembles(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    return table(ensembles_rows(jobs or load_jobs(store, suite)), FIELDS)
