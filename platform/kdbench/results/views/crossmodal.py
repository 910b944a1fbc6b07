"""`crossmodal` view (Tian, Krishnan & Isola 2020, §4.3, cross-modal transfer): linear-probe accuracy of the
teacher on its modality, and of the student on the other modality — trained alone with labels (`none`, the
supervised upper bound), at its random initialisation (`untrained`, the floor), and by each transfer method
without labels — with the mean over seeds, its 95% interval, the paired gain over the supervised student
(`gain`, the cells' usual baseline) and the paired gain over the floor (`vs_floor`): what each transfer added
to random features of the same seeds."""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store
from kdbench.tasks import TASKS

from .cells import CELL_FIELDS, baselines, cell, dataset_of, table, versus, versus_fields
from .jobs import SuiteJobs, group, load_jobs

FLOOR = "untrained"
FIELDS = [pa.field("dataset", pa.string()), pa.field("role", pa.string()),  # teacher | supervised | floor | transfer
          pa.field("model", pa.string()), pa.field("teacher", pa.string()), pa.field("method", pa.string()),
          pa.field("method_params", pa.string()), *CELL_FIELDS, *versus_fields("vs_floor")]
ORDER = {"teacher": 0, "supervised": 1, "floor": 2, "transfer": 3}


def _role(kind: str, method: str) -> str:
    if kind == "teacher":
        return "teacher"
    if kind == "student":
        return "transfer"
    return "floor" if method == FLOOR else "supervised"


def representation_study(rows: list[dict]) -> bool:
    """Whether the suite's jobs are scored on their representation (a task that reads features: the linear probe);
    other suites have no row in this view."""
    return any(r.get("task") in TASKS and TASKS.get(r["task"]).reads_features for r in rows)


def crossmodal_rows(jobs: SuiteJobs) -> list[dict]:
    if not representation_study(jobs.rows):
        return []
    alone = baselines(jobs.rows)
    floors = group(jobs.where(lambda r: r["kind"] == "baseline" and r["method"] == FLOOR), lambda r: (r["student"],))
    out = []
    for (kind, model, teacher, method, params), rows in group(
            jobs.where(lambda r: r["kind"] in ("teacher", "baseline", "student") and len(r["chain"]) <= 2),
            lambda r: (r["kind"], r["student"], r["teacher"], r["method"], r["method_params"])).items():
        role = _role(kind, method)
        floor = floors.get((model,)) if role != "teacher" else None
        out.append({"dataset": dataset_of(rows), "role": role, "model": model, "teacher": teacher, "method": method,
                    "method_params": params, **cell(rows, alone.get(model) if role == "transfer" else None),
                    **versus("vs_floor", rows, floor if role in ("transfer", "supervised") else None)})
    return sorted(out, key=lambda r: (ORDER[r["role"]], r["model"], r["teacher"] or "", r["method"],
                                      r["method_params"]))


def crossmodal(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    return table(crossmodal_rows(jobs or load_jobs(store, suite)), FIELDS)


def plot_crossmodal(table: pa.Table) -> bytes:
    """Probe accuracy per cell (bars with the 95% interval over seeds), the floor as a dashed line."""
    from .plots import _errors, _figure, _no_data, _png
    from .render import Units

    rows = [r for r in table.to_pylist() if r["mean"] is not None]
    if not rows:
        return _no_data("linear-probe accuracy")
    u = Units.of(rows)
    sc = u.metric.scale
    fig = _figure(7, 0.45 * len(rows) + 1.3)
    ax = fig.add_subplot()
    labels = [f"{r['role']}: {r['model']}" + (f" ← {r['teacher']} ({r['method']})" if r["teacher"] else
                                             f" ({r['method']})") for r in rows]
    colours = {"teacher": "C3", "supervised": "0.4", "floor": "0.7", "transfer": "C0"}
    ax.barh(range(len(rows)), [sc * r["mean"] for r in rows], xerr=_errors(rows, sc), capsize=3,
            color=[colours[r["role"]] for r in rows])
    for r in rows:
        if r["role"] == "floor":
            ax.axvline(sc * r["mean"], color="0.5", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"test {u.label} (linear probe on the embedding)")
    return _png(fig)
