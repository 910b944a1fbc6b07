"""`methods` view: every (teacher, student, via, method) cell, the student alone included, with the paired
gain over the student alone, ranked within (teacher, student); cells chosen by a hyperparameter search say
how they were chosen; `paper_acc` (a fraction) and `paper_source` from the suite's reference CSV for the
student alone and direct distillation. A cell whose jobs are all pending is listed with n = 0 and no rank."""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store

from .cells import CELL_FIELDS, baselines, cell, dataset_of, table
from .jobs import SuiteJobs, better, group, higher_is_better, load_jobs
from .reference import lookup, reference_rows, with_column

FIELDS = [pa.field("dataset", pa.string()), pa.field("teacher", pa.string()), pa.field("student", pa.string()),
          pa.field("chain", pa.string()), pa.field("method", pa.string()), pa.field("method_params", pa.string()),
          *CELL_FIELDS, pa.field("rank", pa.int64()), pa.field("chosen_by", pa.string()),
          pa.field("paper_acc", pa.float64()), pa.field("paper_source", pa.string()),
          pa.field("protocol", pa.string())]  # validation or paper (suite/protocol.py); '+'-joined if mixed


def methods_rows(jobs: SuiteJobs, chosen: dict[tuple, str] | None = None, reference: list[dict] = ()) -> list[dict]:
    rows = jobs.where(lambda r: r["kind"] in ("student", "baseline"))
    alone = baselines(rows)
    out = []
    cells = group(rows, lambda r: (r["teacher"], r["student"], tuple(r["chain"]), r["method"], r["method_params"]))
    for (teacher, student, chain, method, params), members in cells.items():
        row = {"dataset": dataset_of(members), "teacher": teacher, "student": student, "chain": " → ".join(chain),
               "method": method, "method_params": params,
               **cell(members, None if teacher is None else alone.get(student))}
        row["chosen_by"] = (chosen or {}).get((teacher, student, method, params))
        row["protocol"] = "+".join(sorted({r["protocol"] for r in members if r.get("protocol")})) or None
        if len(chain) <= 2:  # papers report direct distillation and the student alone
            row["paper_acc"], row["paper_source"] = lookup(reference, "paper_acc", teacher=teacher or "",
                                                           student=student, method=method, ta="")
        out.append(row)
    _rank(out, higher_is_better(rows))
    return sorted(out, key=lambda r: (r["student"], r["teacher"] or "", r["rank"] or 1 << 30, r["method"], r["chain"],
                                      r["method_params"]))


def _rank(rows: list[dict], higher: bool) -> None:
    """Rank by mean within (teacher, student), 1 = best; equal means share a rank; no mean, no rank."""
    for members in group(rows, lambda r: (r["teacher"], r["student"])).values():
        means = [r["mean"] for r in members if r["mean"] is not None]
        for r in members:
            r["rank"] = None if r["mean"] is None else 1 + sum(better(m, r["mean"], higher) for m in means)


def methods(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    from .search_info import chosen_cells

    jobs = jobs or load_jobs(store, suite)
    reference = with_column(reference_rows(store, suite), "paper_acc")
    return table(methods_rows(jobs, chosen_cells(store, suite), reference), FIELDS)
