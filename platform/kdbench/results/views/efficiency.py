"""`efficiency` view: accuracy against size and latency — which models (and which ways of training them) are
worth their cost. One row per cell (a teacher, a student alone, or a student distilled a given way), with the
model's parameters, forward FLOPs per sample and batch-1 CPU latency (kdbench.results.costs: measured once
per architecture and machine, kept in the store), the cell's accuracy statistics, and whether the cell is on
the Pareto front of accuracy against parameters and against latency (no other cell is at least as accurate
for no more cost, and better in one of the two).
"""

from __future__ import annotations

import math

import pyarrow as pa

from kdbench.store import Store

from ..costs import model_costs
from .cells import CELL_FIELDS, baselines, cell, dataset_of, table
from .jobs import SuiteJobs, group, higher_is_better, load_jobs

ROLES = {"teacher": "teacher", "pretrained": "teacher", "baseline": "alone", "student": "distilled"}
FIELDS = [pa.field("dataset", pa.string()), pa.field("role", pa.string()), pa.field("model", pa.string()),
          pa.field("arch", pa.string()), pa.field("teacher", pa.string()), pa.field("chain", pa.string()),
          pa.field("method", pa.string()), pa.field("method_params", pa.string()),
          pa.field("params", pa.int64()),  # the model's parameter count
          pa.field("mflops", pa.float64()),  # forward MFLOPs per sample (multiply-add = 2)
          pa.field("latency_ms", pa.float64()),  # median batch-1 forward, on `latency_device`
          pa.field("latency_device", pa.string()),
          *CELL_FIELDS,
          pa.field("pareto_params", pa.bool_()),  # on the accuracy-vs-parameters front (None: no accuracy)
          pa.field("pareto_latency", pa.bool_())]


def pareto_front(points: list[tuple[float | None, float | None]], higher: bool = True) -> list[bool | None]:
    """For (cost, score) points: True where no other point costs no more and scores at least as well, and
    is strictly better in one; None where cost or score is unknown. `higher`: whether a larger score is better
    (`jobs.higher_is_better`). O(n log n): sorted by cost."""
    if not higher:  # lower is better: the same front over negated scores
        points = [(c, None if a is None else -a) for c, a in points]
    front: list[bool | None] = [None if c is None or a is None else False for c, a in points]
    known = sorted((i for i, f in enumerate(front) if f is not None), key=lambda i: (points[i][0], -points[i][1]))
    best, i = -math.inf, 0
    while i < len(known):
        j, cost = i, points[known[i]][0]
        while j < len(known) and points[known[j]][0] == cost:
            j += 1
        top = points[known[i]][1]  # the most accurate at this cost
        if top > best:
            for k in known[i:j]:
                front[k] = points[k][1] == top
            best = top
        i = j
    return front


def efficiency_rows(jobs: SuiteJobs, store: Store | None = None) -> list[dict]:
    alone = baselines(jobs.rows)
    higher = higher_is_better(jobs.rows)
    # Not keyed by dataset: a planned job without a result yet has none, and belongs to its cell all the same.
    cells = group((r for r in jobs.rows if r["kind"] in ROLES),
                  lambda r: (ROLES[r["kind"]], r["student"], tuple(r["chain"]), r["method"], r["method_params"]))
    out = []
    for (role, model, chain, method, params), rows in cells.items():
        arch = next((r for r in rows if r["student_arch"]), None)
        out.append({"dataset": dataset_of(rows), "role": role, "model": model,
                    "arch": arch["student_arch"] if arch else None,
                    "teacher": rows[0]["teacher"] if role == "distilled" else None,
                    "chain": " → ".join(chain) if role == "distilled" else None,
                    "method": method if role == "distilled" else None,
                    "method_params": params if role == "distilled" else None,
                    "params": next((r["student_params"] for r in rows if r["student_params"] is not None), None),
                    **cell(rows, alone.get(model) if role == "distilled" else None),
                    "_key": (arch["student_arch"], arch["student_arch_params"] or "{}", arch["dataset"],
                             arch["dataset_params"] or "{}") if arch and arch["dataset"] else None})
    costs = model_costs(store, [r["_key"] for r in out if r["_key"]]) if store is not None else {}
    for r in out:
        c = costs.get(r.pop("_key"))
        if c:
            r.update(mflops=c["flops"] / 1e6, latency_ms=c["latency_ms"], latency_device=c["device"])
            r["params"] = r["params"] if r["params"] is not None else c["params"]
    for by_dataset in group(out, lambda r: (r["dataset"],)).values():  # fronts within a dataset
        for column, front in (("params", "pareto_params"), ("latency_ms", "pareto_latency")):
            points = [(r.get(column), r["mean"]) for r in by_dataset]
            for r, f in zip(by_dataset, pareto_front(points, higher), strict=True):
                r[front] = f
    sign = -1 if higher else 1  # the best first among equal sizes
    out.sort(key=lambda r: (r["dataset"] or "", r["params"] is None, r["params"] or 0, sign * (r["mean"] or 0)))
    return out


def efficiency(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    return table(efficiency_rows(jobs or load_jobs(store, suite), store), FIELDS)
