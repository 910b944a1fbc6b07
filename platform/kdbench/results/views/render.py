"""The study views as text: one display table per view (strings), shown by rich in the terminal and as a
self-contained HTML page. Accuracies in %, differences in percentage points; `n.s.` marks a paired
difference whose 95% interval includes 0 (not distinguishable from no difference)."""

from __future__ import annotations

import pyarrow as pa
from rich.table import Table
from rich.text import Text

NS = "n.s."
TITLES = {
    "takd": "Teacher assistants (TAKD): the student alone, direct KD and each TA chain",
    "teacher-size": "Teacher size vs student accuracy (direct distillation)",
    "eskd": "Early-stopped teachers and early-stopped KD: student accuracy vs teacher epoch",
    "methods": "Methods per (teacher, student)",
    "ensembles": "Ensemble teachers vs their best single member",
    "hinton": "Test errors (misclassified test images) of the teacher, the student alone and distilled",
    "efficiency": "Accuracy against size and latency (★: on the Pareto front of accuracy vs parameters / vs "
                  "batch-1 latency)",
}
# view -> identity columns shown first, (header, column)
_IDS = {
    "takd": [("teacher", "teacher"), ("student", "student"), ("method", "method"), ("via", "via"),
             ("TA size", "ta_params")],
    "teacher-size": [("student", "student"), ("method", "method"), ("teacher", "teacher"),
                     ("teacher size", "teacher_params"), ("teacher acc %", "teacher_test_acc")],
    "eskd": [("student", "student"), ("method", "method"), ("KD stops after", "kd_stop_epoch"),
             ("teacher", "teacher"), ("teacher epoch", "teacher_epoch"), ("taken as", "teacher_source"),
             ("teacher acc %", "teacher_test_acc")],
    "methods": [("teacher", "teacher"), ("student", "student"), ("chain", "chain"), ("method", "method"),
                ("rank", "rank")],
    "ensembles": [("student", "student"), ("method", "method"), ("teacher", "teacher"), ("combine", "combine"),
                  ("teacher acc %", "teacher_test_acc")],
    "hinton": [("role", "role"), ("model", "model"), ("teacher", "teacher"), ("method", "method"),
               ("test errors ± 95% CI", "errors"), ("of", "test_size"), ("paper errors", "paper_errors")],
    "efficiency": [("role", "role"), ("model", "model"), ("distilled along", "chain"), ("method", "method"),
                   ("params", "params"), ("MFLOPs", "mflops"), ("latency ms", "latency_ms")],
}
_VERSUS = {"takd": [("vs direct KD pp [95% CI]", "vs_direct")],
           "teacher-size": [("vs next smaller teacher pp", "vs_smaller")],
           "ensembles": [("vs best single pp", "vs_best_single")]}
_EXTRA = {"methods": [("chosen by", "chosen_by")],
          "efficiency": [("front: params", "pareto_params"), ("front: latency", "pareto_latency")]}


def pct(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{100 * x:.{digits}f}"


def mean_ci(r: dict) -> str:
    if r.get("mean") is None:
        return "—"
    if r.get("ci_low") is None:
        return pct(r["mean"])
    return f"{pct(r['mean'])} ± {100 * (r['ci_high'] - r['ci_low']) / 2:.2f}"


def diff(r: dict, prefix: str) -> str:
    d = r.get(prefix)
    if d is None:
        return ""
    if r.get(f"{prefix}_ci_low") is None:
        return f"{100 * d:+.2f}"
    mark = f" {NS}" if r.get(f"{prefix}_includes_zero") else ""
    return f"{100 * d:+.2f} [{100 * r[f'{prefix}_ci_low']:+.2f}, {100 * r[f'{prefix}_ci_high']:+.2f}]{mark}"


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
        shown = ", ".join(f"{k}={params.get(k, '—')}" for k in sorted(keys))
        out[(r["method"], r.get("method_params"))] = f"{r['method']}({shown})" if shown else r["method"]
    return out


def _value(r: dict, col: str, ambiguous) -> str:
    v = r.get(col)
    if col == "method":
        return "" if v is None else ambiguous.get((v, r.get("method_params")), v)
    if col in ("teacher_test_acc",):
        return pct(v)
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


def display(view: str, table: pa.Table) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of strings) of a view table."""
    rows = table.to_pylist()
    ambiguous = short_labels(rows)
    paper = any(r.get("paper_acc") is not None for r in rows)
    heads = [h for h, _ in _IDS[view]] + ["n", "failed", "test acc % ± 95% CI", "std pp", "alone %",
                                          "gain over alone pp [95% CI]"]
    heads += [h for h, _ in _VERSUS.get(view, [])] + [h for h, _ in _EXTRA.get(view, [])]
    heads += ["paper %"] if paper else []
    out = []
    for r in rows:
        cells = [_value(r, c, ambiguous) for _, c in _IDS[view]]
        cells += [str(r["n"]), str(r["failed"]), mean_ci(r), "" if r["std"] is None else f"{100 * r['std']:.2f}",
                  pct(r.get("alone_mean")), diff(r, "gain")]
        cells += [diff(r, c) for _, c in _VERSUS.get(view, [])] + [_value(r, c, ambiguous) for _, c in
                                                                   _EXTRA.get(view, [])]
        if paper:
            cells.append(f"{r['paper_acc']:.2f}" if r.get("paper_acc") is not None else "")  # published in %
        out.append(cells)
    return heads, out


def caption(view: str, suite: str) -> str:
    return (f"{suite}: {TITLES[view]}. Test accuracy % over seeds (mean ± 95% t-interval); differences in "
            f"percentage points, paired by seed; '{NS}': the interval includes 0.")


def rich_table(view: str, suite: str, table: pa.Table) -> Table:
    heads, rows = display(view, table)
    t = Table(title=caption(view, suite), title_justify="left")
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
