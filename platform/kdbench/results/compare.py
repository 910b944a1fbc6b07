"""`kdbench compare SUITE SUITE…`: the same cells of several suites side by side.

A cell is (teacher, student, chain, method, hyperparameters), named as each suite names it — the methods view
of each suite, joined on the cell. Each suite's column is its mean ± 95% interval over seeds; with two suites, a
last column gives the difference of the means (second − first; its sign reads in the metric's direction) and
whether their intervals overlap. Cells only one suite has are listed with a dash for the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from kdbench.store import Store

from .views.jobs import load_jobs
from .views.methods import methods
from .views.render import Units, interval, short_labels


@dataclass(frozen=True)
class Comparison:
    suites: list[str]
    headers: list[str]
    rows: list[list[str]]  # display strings, in the unit a person reads
    units: Units


def compare(store: Store, suites: list[str]) -> Comparison:
    tables = {s: methods(store, s, load_jobs(store, s)).to_pylist() for s in suites}
    metrics = {r["metric"] for rows in tables.values() for r in rows if r.get("metric")}
    if len(metrics) > 1:
        raise ValueError(f"the suites rank by different metrics ({', '.join(sorted(metrics))}): not comparable")
    everything = [r for rows in tables.values() for r in rows]
    u = Units.of(everything)
    labels = short_labels(everything)
    cells: dict[tuple, dict[str, dict]] = {}
    for suite, rows in tables.items():
        for r in rows:
            key = (r["student"], r["teacher"] or "", r["chain"], labels.get((r["method"], r["method_params"]),
                                                                          r["method"]))
            cells.setdefault(key, {})[suite] = r
    headers = ["teacher", "student", "via", "method", *(f"{s} {u.label}" for s in suites)]
    two = len(suites) == 2
    headers += [f"{suites[1]} − {suites[0]} {u.diff_unit}", "intervals overlap"] if two else []
    out = []
    for key in sorted(cells):
        student, teacher, chain, label = key
        by = cells[key]
        via = " → ".join(chain.split(" → ")[1:-1])
        row = [teacher or "(alone)", student, via, label]
        row += [interval(*_stats(by.get(s)), u) if s in by else "—" for s in suites]
        if two:
            a, b = by.get(suites[0]), by.get(suites[1])
            if a and b and a["mean"] is not None and b["mean"] is not None:
                overlap = (None if None in (a["ci_low"], b["ci_low"])
                           else a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"])
                row += [u.fmt(b["mean"] - a["mean"], "+"), "" if overlap is None else ("yes" if overlap else "no")]
            else:
                row += ["", ""]
        out.append(row)
    return Comparison(suites, headers, out, u)


def _stats(r: dict | None) -> tuple[float | None, float | None, float | None]:
    return (None, None, None) if r is None else (r["mean"], r["ci_low"], r["ci_high"])


def as_table(c: Comparison) -> pa.Table:
    return pa.table({h: [r[i] for r in c.rows] for i, h in enumerate(c.headers)})
