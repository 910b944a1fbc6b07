"""`takd` view (Mirzadeh et al., "Improved Knowledge Distillation via Teacher Assistant", AAAI 2020):
for each (teacher, student, method), the student alone, direct distillation and every TA chain, with the
TA's size and the chain's paired difference against direct distillation (same seeds)."""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store

from .cells import CELL_FIELDS, baselines, cell, dataset_of, first, table, versus, versus_fields
from .jobs import SuiteJobs, group, load_jobs
from .reference import lookup, reference_rows, with_column

ALONE = "(alone)"
FIELDS = [pa.field("dataset", pa.string()), pa.field("teacher", pa.string()), pa.field("student", pa.string()),
          pa.field("method", pa.string()), pa.field("method_params", pa.string()),
          pa.field("via", pa.string()),  # '' direct distillation, '(alone)' no teacher, else the TAs 'a → b'
          pa.field("chain_length", pa.int64()),  # models in the chain, teacher and student included
          pa.field("ta_params", pa.int64()),  # parameters of the student's own teacher (the last TA)
          pa.field("teacher_params", pa.int64()),
          *CELL_FIELDS, *versus_fields("vs_direct"),
          pa.field("paper_acc", pa.float64()),  # published accuracy, a fraction
          pa.field("paper_source", pa.string())]


def takd_rows(jobs: SuiteJobs, reference: list[dict] = ()) -> list[dict]:
    students = jobs.where(lambda r: r["kind"] == "student")
    if not any(len(r["chain"]) > 2 for r in students):
        return []
    alone = baselines(jobs.rows)
    alone_rows = group(jobs.where(lambda r: r["kind"] == "baseline"), lambda r: (r["student"],))
    groups = group(students, lambda r: (r["chain"][0], r["student"], r["method"], r["method_params"]))
    out = []
    for (teacher, student, method, params), members in groups.items():
        cells = group(members, lambda r: tuple(r["chain"]))
        if not any(len(c) > 2 for c in cells):
            continue  # no chain for this (teacher, student, method): not a TA study
        direct = cells.get((teacher, student))
        base = alone_rows.get((student,), [])
        teacher_params = first(direct or [], "teacher_params")
        own = {"teacher": teacher, "student": student, "method": method, "method_params": params,
               "teacher_params": teacher_params}
        out.append({**own, "dataset": dataset_of(base), "via": ALONE, "chain_length": 1, **cell(base, None),
                    "alone_mean": None, **versus("vs_direct", [], None)})
        for chain, rows in sorted(cells.items(), key=lambda kv: (len(kv[0]), kv[0])):
            # A job's teacher_params counts its own teacher's: for a chain, the last TA.
            row = {**own, "dataset": dataset_of(rows), "via": " → ".join(chain[1:-1]), "chain_length": len(chain),
                   "ta_params": first(rows, "teacher_params") if len(chain) > 2 else None,
                   **cell(rows, alone.get(student))}
            row.update(versus("vs_direct", rows, direct) if len(chain) > 2 else versus("vs_direct", [], None))
            out.append(row)
    for r in out:
        r["paper_acc"], r["paper_source"] = lookup(reference, "paper_acc", teacher=r["teacher"], ta=r["via"],
                                                   student=r["student"])
    return out


def takd(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    ref = with_column(reference_rows(store, suite), "ta")
    return table(takd_rows(jobs or load_jobs(store, suite), ref), FIELDS)
