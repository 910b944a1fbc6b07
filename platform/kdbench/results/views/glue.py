"""`glue` view: the downstream leaderboard of a suite with `finetune:` — per trained model (the teacher, each
student alone, each distilled student), its parameters and batch-1 latency, each task's score over its fine-tune
jobs (mean and 95% t-interval over every upstream seed × fine-tune seed), and the macro score (the mean of the
task means, GLUE's macro-score, over the tasks the model has a score for).

A task's score is the metric(s) the suite names for it (`finetune_metric`: e.g. `mcc` for CoLA, `f1+acc` for MRPC
— the mean of the two — `acc` otherwise), shown ×100 as GLUE reports them. A fine-tune job is placed in its cell
through the job it started from (`finetune_from`): that job's role, model, method and chain. Parameters and
latency are the upstream model's (encoder and pre-training head, kdbench.results.costs: measured once per
architecture and machine). Linear in the number of jobs.
"""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store

from ..costs import model_costs
from ..stats import summarize
from .cells import clipped
from .efficiency import ROLES
from .jobs import SuiteJobs, group, load_jobs

SCALE = 100.0  # GLUE's scores are percentages (MCC × 100 for CoLA)


def glue_rows(jobs: SuiteJobs, store: Store | None = None) -> tuple[list[dict], list[str]]:
    """(one row per model cell, the tasks in plan order)."""
    by_id = jobs.by_id()
    tuned = [r for r in jobs.rows if r["kind"] == "finetune" and r.get("finetune_from") in by_id]
    tasks = list(dict.fromkeys(r["finetune_task"] for r in tuned if r.get("finetune_task")))

    def key(r: dict) -> tuple:
        up = by_id[r["finetune_from"]]
        return ROLES.get(up["kind"], up["kind"]), up["student"], tuple(up["chain"] or ()), up["method"], \
            up["method_params"]

    out = []
    for (role, model, chain, method, params), rows in group(tuned, key).items():
        ups = [by_id[r["finetune_from"]] for r in rows]
        arch = next((u for u in ups if u["student_arch"] and u["dataset"]), None)
        row = {"role": role, "model": model, "chain": " → ".join(chain) if role == "distilled" else None,
               "method": method if role == "distilled" else None,
               "method_params": params if role == "distilled" else None,
               "params": next((u["student_params"] for u in ups if u["student_params"] is not None), None),
               "_key": (arch["student_arch"], arch["student_arch_params"] or "{}", arch["dataset"],
                        arch["dataset_params"] or "{}") if arch else None}
        means = []
        for task in tasks:
            mine = [r for r in rows if r["finetune_task"] == task]
            # `score`: the task's metric(s) on test (views/jobs.py `_scores`)
            scores = [r["score"] for r in mine if r["status"] == "ok" and r["score"] is not None]
            s = summarize(scores)
            metric = next((r["finetune_metric"] for r in mine if r.get("finetune_metric")), None)
            # clipped to the metric's range (a mean of metrics: the first's; GLUE's are all [0, 1] but Matthews)
            low, high = clipped(_range((metric or "acc").split("+")[0]), s.ci_low, s.ci_high)
            row.update({f"{task}_metric": metric, f"{task}_n": s.n,
                        f"{task}_pending": sum(r["status"] == "pending" for r in mine),
                        f"{task}_mean": s.mean, f"{task}_ci_low": low, f"{task}_ci_high": high})
            if s.mean is not None:
                means.append(s.mean)
        row["macro"] = sum(means) / len(means) if means else None
        row["macro_tasks"] = len(means)
        out.append(row)
    costs = model_costs(store, [r["_key"] for r in out if r["_key"]]) if store is not None else {}
    for r in out:
        c = costs.get(r.pop("_key"))
        r["latency_ms"] = c["latency_ms"] if c else None
        r["latency_device"] = c["device"] if c else None
    out.sort(key=lambda r: (-(r["macro"] if r["macro"] is not None else -1), r["model"]))
    return out, tasks


def _range(name: str):
    from kdbench.tasks import metric_named

    return metric_named(name)


def glue(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    rows, tasks = glue_rows(jobs or load_jobs(store, suite), store)
    fields = [pa.field("role", pa.string()), pa.field("model", pa.string()), pa.field("chain", pa.string()),
              pa.field("method", pa.string()), pa.field("method_params", pa.string()),
              pa.field("params", pa.int64()), pa.field("latency_ms", pa.float64()),
              pa.field("latency_device", pa.string())]
    for t in tasks:
        fields += [pa.field(f"{t}_metric", pa.string()), pa.field(f"{t}_n", pa.int64()),
                   pa.field(f"{t}_pending", pa.int64()), pa.field(f"{t}_mean", pa.float64()),
                   pa.field(f"{t}_ci_low", pa.float64()), pa.field(f"{t}_ci_high", pa.float64())]
    fields += [pa.field("macro", pa.float64()), pa.field("macro_tasks", pa.int64())]
    schema = pa.schema(fields)
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)


def tasks_of(table: pa.Table) -> list[str]:
    return [c[:-len("_mean")] for c in table.column_names if c.endswith("_mean")]


def glue_display(table: pa.Table) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of strings): scores ×100, `mean ± half-width` over the cell's fine-tune jobs."""
    from .render import _count, short_labels

    tasks = tasks_of(table)
    rows = table.to_pylist()
    labels = short_labels([r for r in rows if r["method"]])
    heads = ["role", "model", "distilled along", "method", "params", "latency ms"]
    heads += [f"{t} {next((r[f'{t}_metric'] for r in rows if r[f'{t}_metric']), '')}".strip() for t in tasks]
    heads += ["n", "macro"]
    out = []
    for r in rows:
        cells = [r["role"] or "", r["model"] or "", r["chain"] or "",
                 labels.get((r["method"], r["method_params"]), "") if r["method"] else "", _count(r["params"]),
                 "" if r["latency_ms"] is None else f"{r['latency_ms']:.3f}"]
        for t in tasks:
            cells.append(_interval(r[f"{t}_mean"], r[f"{t}_ci_low"], r[f"{t}_ci_high"]))
        cells.append("/".join(str(r[f"{t}_n"]) for t in tasks))
        cells.append("" if r["macro"] is None else f"{SCALE * r['macro']:.1f}")
        out.append(cells)
    return heads, out


def _interval(m: float | None, lo: float | None, hi: float | None) -> str:
    """`65.0 ± 6.3`; `65.0 [1.5, 100.0]` where the interval was clipped to the metric's range (render.interval)."""
    if m is None:
        return "—"
    if lo is None or hi is None:
        return f"{SCALE * m:.1f}"
    if abs((hi - m) - (m - lo)) > 1e-9 * max(1.0, abs(m)):
        return f"{SCALE * m:.1f} [{SCALE * lo:.1f}, {SCALE * hi:.1f}]"
    return f"{SCALE * m:.1f} ± {SCALE * (hi - lo) / 2:.1f}"


def plot_glue(table: pa.Table) -> bytes:
    """The macro-score ×100 against parameters and against batch-1 latency (log x), one point per model, named."""
    from .plots import _figure, _no_data, _png
    from .render import short_labels

    rows = [r for r in table.to_pylist() if r["macro"] is not None]
    labels = short_labels([r for r in rows if r["method"]])
    panels = [(x, label) for x, label in (("params", "parameters"), ("latency_ms", "batch-1 latency (ms)"))
              if any(r[x] for r in rows)]
    if not panels:
        return _no_data("fine-tuned scores")
    fig = _figure(5 * len(panels), 3.5)
    for i, (x, label) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for role, marker in (("teacher", "s"), ("alone", "o"), ("distilled", "^")):
            mine = [r for r in rows if r["role"] == role and r[x]]
            if mine:
                ax.plot([r[x] for r in mine], [SCALE * r["macro"] for r in mine], marker, label=role, alpha=0.8)
        for r in rows:
            if r[x]:
                ax.annotate(r["model"] + (f" ({labels[(r['method'], r['method_params'])]})" if r["method"] else ""),
                            (r[x], SCALE * r["macro"]),
                            fontsize=7, xytext=(3, -9), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("macro-score")
        ax.set_title(f"macro-score vs {label}", fontsize=10, loc="left")
        ax.legend(fontsize=7)
    return _png(fig)
