"""`pose` view: PCK against FLOPs per frame for video pose (Dynamic Kernel Distillation, Nie et al. 2019) —
the frame-by-frame teacher, the students alone and the distilled students, each with its 95% interval over
seeds.

A model's FLOPs are counted on one clip's forward (kdbench.zoo.models.cost, via the efficiency view's stored
costs) and divided by the clip's T frames: for `dkd_pose_net` the pose initialiser runs on frame 1 only, so
its cost is amortised over T, as it runs. One row per cell (role, model, method), the efficiency view's
fields plus `frames`, `mflops_per_frame` and `pareto_flops` (on the PCK-vs-FLOPs/frame front). Suites
without clip inputs (T, C, H, W) have no rows (so their reports have no pose view).
"""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store

from ..costs import describe
from .efficiency import FIELDS as EFFICIENCY_FIELDS
from .efficiency import efficiency_rows, pareto_front
from .jobs import SuiteJobs, group, higher_is_better, load_jobs

FIELDS = [*EFFICIENCY_FIELDS, pa.field("frames", pa.int64()), pa.field("mflops_per_frame", pa.float64()),
          pa.field("pareto_flops", pa.bool_())]


def _frames(jobs: SuiteJobs) -> dict[str, int]:
    """dataset -> frames per clip (the input's first dimension), for the datasets that can describe it."""
    out = {}
    for r in jobs.rows:
        if r["dataset"] and r["dataset"] not in out:
            described = describe(r["dataset"], r["dataset_params"] or "{}")
            if described is not None and len(described[0]) == 4:
                out[r["dataset"]] = described[0][0]
    return out


def pose_rows(jobs: SuiteJobs, store: Store | None = None) -> list[dict]:
    frames = _frames(jobs)
    if not frames:  # no dataset of clips (or none describable here): not a video study, no rows
        return []
    rows = [r for r in efficiency_rows(jobs, store) if r["dataset"] in frames]
    for r in rows:
        t = frames.get(r["dataset"])
        r["frames"] = t
        r["mflops_per_frame"] = r["mflops"] / t if t and r.get("mflops") is not None else None
    higher = higher_is_better(jobs.rows)
    for by_dataset in group(rows, lambda r: (r["dataset"],)).values():
        points = [(r["mflops_per_frame"], r["mean"]) for r in by_dataset]
        for r, f in zip(by_dataset, pareto_front(points, higher), strict=True):
            r["pareto_flops"] = f
    return rows


def pose(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    schema = pa.schema(FIELDS)
    rows = pose_rows(jobs or load_jobs(store, suite), store)
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in FIELDS} for r in rows], schema=schema)
