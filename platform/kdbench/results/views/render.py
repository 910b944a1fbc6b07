"""Rendering the views: one display table per view (strings), shown by rich in the terminal and as a
self-contained HTML page (`page.py`); the two tables `kdbench leaderboard SUITE` prints (`terminal_tables`).
Values are shown in the unit of the table's metric (the task's primary one, its `metric` column): accuracy in
%, differences in percentage points; RMSE as it is, differences in its units. `n.s.` marks a paired
difference whose 95% interval includes 0 (not distinguishable from no difference). The tables themselves
hold raw values (accuracy as a fraction)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from rich.table import Table
from rich.text import Text

from kdbench.tasks import Metric, metric_named

NS = "n.s."
TITLES = {
    "takd": "Teacher assistants (TAKD): the student alone, direct KD and each TA chain",
    "teacher-size": "Teacher size vs student accuracy (direct distillation)",
    "eskd": "Early-stopped teachers and early-stopped KD: student accuracy vs teacher epoch",
    "methods": "Methods per (teacher, student)",
    "ensembles": "Ensemble teachers vs their best single member",
    "hinton": "Test errors (misclassified test images) of the teacher, the student alone and distilled",
    "crossmodal": "Cross-modal transfer: linear-probe accuracy of the teacher, the supervised student, the random "
                  "floor and each transfer without labels",
    "efficiency": "Accuracy against size and latency (★: on the Pareto front of accuracy vs parameters / vs "
                  "batch-1 latency)",
    "pose": "Video pose: PCK against FLOPs per frame (★: on the Pareto front of PCK vs FLOPs/frame)",
    "glue": "Fine-tuned on each downstream task: score ×100 per task (mean ± 95% CI over upstream × fine-tune seeds; "
            "mcc: Matthews, f1+acc: their mean), the macro-score, parameters and batch-1 latency",
    "sparsity": "Accuracy against compression (teacher parameters / non-zero parameters) of dense and sparse "
                "students, alone and distilled",
}
# view -> identity columns shown first, (header, column)
_IDS = {
    "takd": [("teacher", "teacher"), ("student", "student"), ("method", "method"), ("via", "via"),
             ("TA size", "ta_params")],
    "teacher-size": [("student", "student"), ("method", "method"), ("teacher", "teacher"),
                     ("teacher size", "teacher_params"), ("teacher acc %", "teacher_score")],
    "eskd": [("student", "student"), ("method", "method"), ("KD stops after", "kd_stop_epoch"),
             ("teacher", "teacher"), ("teacher epoch", "teacher_epoch"), ("taken as", "teacher_source"),
             ("teacher acc %", "teacher_score")],
    "methods": [("teacher", "teacher"), ("student", "student"), ("chain", "chain"), ("method", "method"),
                ("rank", "rank")],
    "ensembles": [("student", "student"), ("method", "method"), ("teacher", "teacher"), ("combine", "combine"),
                  ("teacher acc %", "teacher_score")],
    "hinton": [("role", "role"), ("model", "model"), ("teacher", "teacher"), ("method", "method"),
               ("test errors ± 95% CI", "errors"), ("of", "test_size"), ("paper errors", "paper_errors")],
    "crossmodal": [("role", "role"), ("model", "model"), ("teacher", "teacher"), ("method", "method")],
    "efficiency": [("role", "role"), ("model", "model"), ("distilled along", "chain"), ("method", "method"),
                   ("params", "params"), ("MFLOPs", "mflops"), ("latency ms", "latency_ms")],
    "pose": [("role", "role"), ("model", "model"), ("method", "method"), ("params", "params"),
             ("frames", "frames"), ("MFLOPs/frame", "mflops_per_frame")],
    "sparsity": [("category", "category"), ("model", "model"), ("teacher", "teacher"), ("method", "method"),
                 ("deployed", "deployed_params"), ("non-zero", "nonzero_params"), ("sparsity %", "sparsity")],
}
_VERSUS = {"takd": [("vs direct KD pp [95% CI]", "vs_direct")],
           "teacher-size": [("vs next smaller teacher pp", "vs_smaller")],
           "ensembles": [("vs best single pp", "vs_best_single")],
           "crossmodal": [("vs random floor pp", "vs_floor")]}
_EXTRA = {"methods": [("chosen by", "chosen_by"), ("protocol", "protocol")],
          "efficiency": [("front: params", "pareto_params"), ("front: latency", "pareto_latency")],
          "pose": [("front: FLOPs/frame", "pareto_flops")],
          "sparsity": [("compression × [95% CI]", "compression"), ("paper ×", "paper_compression")]}


def pct(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{100 * x:.{digits}f}"


@dataclass(frozen=True)
class Units:
    """How a table's metric reads: accuracy as `96.11` (%), differences in pp; RMSE as `0.4102`."""

    metric: Metric

    @classmethod
    def of(cls, rows: list[dict]) -> Units:
        name = next((r["metric"] for r in rows if r.get("metric")), "acc")
        return cls(metric_named(name))

    @property
    def label(self) -> str:  # "acc %", "rmse"
        return f"{self.metric.name} %" if self.metric.unit == "%" else self.metric.name

    @property
    def diff_unit(self) -> str:
        return "pp" if self.metric.unit == "%" else self.metric.name

    def fmt(self, x: float, sign: str = "") -> str:
        digits = 2 if self.metric.unit == "%" else 4
        return f"{x * self.metric.scale:{sign}.{digits}f}"

    def value(self, x: float | None) -> str:
        return "" if x is None else self.fmt(x)


ACC = Units(metric_named("acc"))


def mean_ci(r: dict, u: Units = ACC) -> str:
    return interval(r.get("mean"), r.get("ci_low"), r.get("ci_high"), u)


def interval(mean: float | None, low: float | None, high: float | None, u: Units = ACC) -> str:
    """`mean ± half-width`; `mean [low, high]` where the interval was clipped to the metric's range (so it is
    no longer symmetric: 99.50 [98.10, 100.00]); `—` without a mean."""
    if mean is None:
        return "—"
    if low is None or high is None:
        return u.value(mean)
    if abs((high - mean) - (mean - low)) > 1e-9 * max(1.0, abs(mean)):
        return f"{u.value(mean)} [{u.fmt(low)}, {u.fmt(high)}]"
    return f"{u.value(mean)} ± {u.fmt((high - low) / 2)}"


def diff(r: dict, prefix: str, u: Units = ACC) -> str:
    d = r.get(prefix)
    if d is None:
        return ""
    if r.get(f"{prefix}_ci_low") is None:
        return u.fmt(d, "+")
    mark = f" {NS}" if r.get(f"{prefix}_includes_zero") else ""
    return f"{u.fmt(d, '+')} [{u.fmt(r[f'{prefix}_ci_low'], '+')}, {u.fmt(r[f'{prefix}_ci_high'], '+')}]{mark}"


def short_labels(rows: list[dict]) -> dict[tuple[str, str], str]:
    """(method, params) -> `kd`, or `kd(stop_epoch=5)`: only the hyperparameters that vary within the table."""
    import json

    keys: dict[str, set[str]] = {}
    for r in rows:
        keys.setdefault(r["method"], set()).update(json.loads(r.get("method_params") or "{}"))
    values: dict[str, dict[str, set]] = {}
    for r in rows:  # a hyperparameter some settings leave out counts as a value of its own
        params = json.loads(r.get("method_params") or "{}")
        for k in keys[r["method"]]:
            values.setdefault(r["method"], {}).setdefault(k, set()).add(json.dumps(params.get(k)))
    out = {}
    for r in rows:
        params = json.loads(r.get("method_params") or "{}")
        keys = {k for m, ks in values.items() if m == r["method"] for k, vs in ks.items() if len(vs) > 1}
        shown = ", ".join(f"{k}={'—' if params.get(k) is None else params[k]}" for k in sorted(keys))
        out[(r["method"], r.get("method_params"))] = f"{r['method']}({shown})" if shown else r["method"]
    return out


def _value(r: dict, col: str, ambiguous, u: Units = ACC) -> str:
    v = r.get(col)
    if col == "method":
        return "" if v is None else ambiguous.get((v, r.get("method_params")), v)
    if col == "teacher_score":
        return u.value(v)
    if col == "errors":
        half = "" if r.get("errors_ci_low") is None else f" ± {(r['errors_ci_high'] - r['errors_ci_low']) / 2:.1f}"
        return "" if v is None else f"{v:.1f}{half}"
    if col == "paper_errors":
        return "" if v is None else f"{v:g}"
    if col in ("ta_params", "teacher_params", "params"):
        return _count(v)
    if col == "mflops":
        return "" if v is None else f"{v:.3g}"
    if col == "latency_ms":
        return "" if v is None else f"{v:.3f}"
    if col in ("deployed_params", "nonzero_params"):  # means over seeds
        return "" if v is None else _count(round(v))
    if col == "sparsity":
        return pct(v, 1)
    if col == "compression":
        ci = "" if r.get("compression_ci_low") is None else \
            f" [{r['compression_ci_low']:.1f}, {r['compression_ci_high']:.1f}]"
        return "" if v is None else f"{v:.1f}{ci}"
    if col == "paper_compression":
        return "" if v is None else f"{v:g}"
    if col in ("pareto_params", "pareto_latency"):
        return "★" if v else ""
    if col == "teacher" and v is None:
        return "(alone)"
    return "" if v is None else str(v)


def _count(n: int | None) -> str:
    if n is None:
        return ""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _n(r: dict) -> str:
    """Seeds with a result, and the cell's jobs that have none yet: a missing row is not a finished one."""
    return f"{r['n']} (+{r['pending']} pending)" if r.get("pending") else str(r["n"])


def display(view: str, table: pa.Table) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of strings) of a view table."""
    if view == "glue":  # one column per downstream task
        from .glue import glue_display

        return glue_display(table)
    rows = table.to_pylist()
    ambiguous = short_labels(rows)
    u = Units.of(rows)
    paper = any(r.get("paper_acc") is not None for r in rows)
    heads = [_unit_header(h, u) for h, _ in _IDS[view]] + [
        "n", "failed", f"test {u.label} ± 95% CI", f"std {u.diff_unit}", f"alone {u.label}",
        f"gain over alone {u.diff_unit} [95% CI]"]
    heads += [_unit_header(h, u) for h, _ in _VERSUS.get(view, [])] + [h for h, _ in _EXTRA.get(view, [])]
    heads += ["paper %"] if paper else []
    out = []
    for r in rows:
        cells = [_value(r, c, ambiguous, u) for _, c in _IDS[view]]
        cells += [_n(r), str(r["failed"]), mean_ci(r, u), u.value(r["std"]), u.value(r.get("alone_mean")),
                  diff(r, "gain", u)]
        cells += [diff(r, c, u) for _, c in _VERSUS.get(view, [])] + [_value(r, c, ambiguous, u) for _, c in
                                                                      _EXTRA.get(view, [])]
        if paper:
            cells.append(pct(r.get("paper_acc")))
        out.append(cells)
    return heads, out


def _unit_header(header: str, u: Units) -> str:
    """A header written for accuracy ("teacher acc %", "… pp") in the table's metric."""
    return header.replace("acc %", u.label).replace(" pp", f" {u.diff_unit}")


RANK_NOTE = ("rank: the method's place among the methods on the same teacher and student (1 = best mean; equal "
             "means share a rank; the student alone is ranked too, so a method ranked below it hurt).")


def caption(view: str, suite: str, u: Units = ACC) -> str:
    if view == "glue":
        return f"{suite}: {TITLES[view]}; higher is better."
    better = "higher" if u.metric.higher_is_better else "lower"
    return (f"{suite}: {TITLES[view]}. Test {u.metric.title}{' %' if u.metric.unit == '%' else ''} over seeds "
            f"(mean ± 95% t-interval; {better} is better); differences in {u.diff_unit}, paired by seed; "
            f"'{NS}': the interval includes 0.")


def rich_table(view: str, suite: str, table: pa.Table) -> Table:
    heads, rows = display(view, table)
    t = Table(title=caption(view, suite, Units.of(table.to_pylist())), title_justify="left")
    for h in heads:
        left = h in ("teacher", "student", "method", "via", "chain", "taken as", "role", "model", "combine",
                     "chosen by", "distilled along")
        t.add_column(h, justify="left" if left else "right", overflow="fold")
    for r in rows:
        t.add_row(*map(Text, r))  # Text: names and JSON must not be read as rich markup
    return t


def display_table(view: str, table: pa.Table) -> pa.Table:
    heads, rows = display(view, table)
    return pa.table({h: [r[i] for r in rows] for i, h in enumerate(heads)})


def _via(chain: str | None) -> str:
    """Teacher assistants of a chain 'teacher → a → b → student' displayed as 'a → b' (the middle names)."""
    names = (chain or "").split(" → ")
    return " → ".join(names[1:-1])


def _datasets(rows: list[dict]) -> str:
    return ", ".join(sorted({r["dataset"] for r in rows if r["dataset"]}))


def _terminal(title: str, columns: list[str]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, justify="left" if c in ("teacher", "student", "via", "method") else "right")
    return t


def _methods_terminal(methods: pa.Table) -> Table:
    rows = methods.to_pylist()
    labels = short_labels(rows)
    u = Units.of(rows)
    better = "higher" if u.metric.higher_is_better else "lower"
    papers = any(r.get("paper_acc") is not None for r in rows)
    t = _terminal(f"Methods on {_datasets(rows)}: mean test {u.metric.title}{' %' if u.metric.unit == '%' else ''} "
                  f"over seeds ± 95% CI ({better} is better); gain over the student alone ({u.diff_unit}, paired by "
                  f"seed; '{NS}': its interval includes 0){protocol_note(rows)}",
                  ["teacher", "student", "via", "method", "rank", "n", "failed", f"test {u.label}",
                   f"gain {u.diff_unit} [95% CI]"] + (["paper %"] if papers else []))
    for i, r in enumerate(rows):
        last = i + 1 == len(rows) or (r["teacher"], r["student"]) != (rows[i + 1]["teacher"], rows[i + 1]["student"])
        cells = [r["teacher"] or "(alone)", r["student"], _via(r["chain"]),
                 labels.get((r["method"], r["method_params"]), r["method"]),
                 "" if r["rank"] is None else str(r["rank"]), _n(r)]
        # Text cells: names and JSON params must not be read as rich markup ("[...]").
        t.add_row(*map(Text, cells), Text(str(r["failed"]), style="red" if r["failed"] else ""), Text(mean_ci(r, u)),
                  Text(diff(r, "gain", u)), *([Text(pct(r.get("paper_acc")))] if papers else []), end_section=last)
    return t


PROTOCOLS = {"validation": "a validation split held out of the training set",
             "paper": "the whole training set, the last epoch's weights, as the papers ran"}


def protocol_note(rows: list[dict]) -> str:
    """`; protocol paper (the whole training set, …)` for a table's rows (both, when mixed)."""
    found = sorted({p for r in rows for p in (r.get("protocol") or "").split("+") if p})
    return "; " + "; ".join(f"protocol {p} ({PROTOCOLS.get(p, p)})" for p in found) if found else ""


def _teacher_size_terminal(teacher_size: pa.Table) -> Table:
    rows = teacher_size.to_pylist()
    labels = short_labels(rows)
    u = Units.of(rows)
    t = _terminal(f"Teacher size vs student {u.metric.title} on {_datasets(rows)} (direct distillation): test "
                  f"{u.label} ± 95% CI",
                  ["student", "method", "teacher", "teacher size", f"teacher {u.label}", "n", f"student {u.label}",
                   f"student alone {u.label}", f"vs next smaller teacher {u.diff_unit} [95% CI]"])
    for r in rows:
        cells = [r["student"], labels.get((r["method"], r["method_params"]), r["method"]), r["teacher"],
                 _count(r["teacher_params"]), u.value(r["teacher_score"]), str(r["n"]), mean_ci(r, u),
                 u.value(r["baseline_mean"]), diff(r, "vs_smaller", u)]
        t.add_row(*map(Text, cells))
    return t


def terminal_tables(methods: pa.Table, teacher_size: pa.Table) -> list[Table]:
    """What `kdbench leaderboard SUITE` prints, from the `methods` and `teacher-size` views: the methods table
    always; teacher size vs accuracy only when the suite distilled from a teacher (else it has no row)."""
    return [_methods_terminal(methods)] + ([_teacher_size_terminal(teacher_size)] if teacher_size.num_rows else [])
