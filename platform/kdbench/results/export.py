"""The table a paper prints: `kdbench leaderboard SUITE --format markdown|latex|csv`, and any Arrow table as
Markdown (`kdbench query --format markdown`).

The paper table pivots the `methods` view: a row per method (the student alone first), a column per
(teacher → student) pair (with its teacher assistants, when a chain), each cell the mean over seeds ± the half
width of its 95% t-interval, in the unit a person reads (accuracy in %, to two decimals; RMSE as is, to four).
The best mean of each column is in bold, in the metric's direction. An interval clipped to the metric's range
(accuracy cannot pass 100%) is no longer symmetric and shows as `mean [low, high]`. CSV holds the same cells
as numbers: `mean`, `ci95_low` and `ci95_high` per pair (empty where one seed gives no interval).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pyarrow as pa

from .views.render import Units, interval, protocol_note, short_labels

FORMATS = ("markdown", "latex", "csv")
ALONE = "student alone"


@dataclass(frozen=True)
class PaperTable:
    caption: str
    columns: list[str]  # "teacher → student" pairs
    rows: list[str]  # method labels, the student alone first
    # (row, column) -> (mean, CI low, CI high), raw values; the interval is clipped to the metric's range
    cells: dict[tuple[str, str], tuple[float | None, float | None, float | None]]
    best: set[tuple[str, str]]  # the best mean of each column
    units: Units


def paper_table(suite: str, methods: pa.Table) -> PaperTable:
    """The `methods` view pivoted as papers print it (see the module's docstring)."""
    records = methods.to_pylist()
    u = Units.of(records)
    labels = short_labels(records)
    columns: list[str] = []
    rows: list[str] = [ALONE] if any(r["teacher"] is None for r in records) else []
    cells: dict[tuple[str, str], tuple[float | None, float | None, float | None]] = {}
    alone: dict[str, tuple[float | None, float | None, float | None]] = {}
    for r in records:
        value = (r["mean"], r.get("ci_low"), r.get("ci_high"))
        if r["teacher"] is None:
            alone[r["student"]] = value
            continue
        column = r["chain"] or f"{r['teacher']} → {r['student']}"
        label = labels.get((r["method"], r["method_params"]), r["method"])
        columns += [column] if column not in columns else []
        rows += [label] if label not in rows else []
        cells[(label, column)] = value
    if not columns:  # no teacher: the students alone are the table
        columns = sorted(alone)
        cells = {(ALONE, s): v for s, v in alone.items()}
    else:
        for column in columns:
            student = column.split(" → ")[-1]
            if student in alone:
                cells[(ALONE, column)] = alone[student]
    best = set()
    for column in columns:
        means = [(cells[(row, column)][0], row) for row in rows if cells.get((row, column), (None,))[0] is not None]
        if means:
            top = (max if u.metric.higher_is_better else min)(m for m, _ in means)
            best |= {(row, column) for m, row in means if m == top}
    better = "higher" if u.metric.higher_is_better else "lower"
    unit = " (%)" if u.metric.unit == "%" else ""
    caption = (f"{suite}: test {u.metric.title}{unit}, mean ± half-width of the 95% t-interval over seeds "
               "([low, high] where clipped to the metric's range); "
               f"bold: the best of each column ({better} is better){protocol_note(records)}")
    return PaperTable(caption, columns, rows, cells, best, u)


def _text(t: PaperTable, row: str, column: str) -> str:
    return interval(*t.cells.get((row, column), (None, None, None)), t.units)


def to_markdown(t: PaperTable) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = [f"| method | {' | '.join(map(esc, t.columns))} |", "| --- |" + " ---: |" * len(t.columns)]
    for row in t.rows:
        cells = [f"**{_text(t, row, c)}**" if (row, c) in t.best else _text(t, row, c) for c in t.columns]
        lines.append(f"| {esc(row)} | {' | '.join(cells)} |")
    return "\n".join([*lines, "", f"*{esc(t.caption)}*", ""])


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "→": r"$\to$", "±": r"$\pm$",
          "—": "--"}


def latex_escape(s: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in s)


def to_latex(t: PaperTable) -> str:
    """A booktabs table (\\usepackage{booktabs})."""
    out = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * len(t.columns) + "}", r"\toprule",
           " & ".join(["method", *map(latex_escape, t.columns)]) + r" \\", r"\midrule"]
    for row in t.rows:
        cells = [latex_escape(_text(t, row, c)) for c in t.columns]
        cells = [rf"\textbf{{{x}}}" if (row, c) in t.best else x for x, c in zip(cells, t.columns, strict=True)]
        out.append(" & ".join([latex_escape(row), *cells]) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{latex_escape(t.caption)}}}", r"\end{table}", ""]
    return "\n".join(out)


def to_csv(t: PaperTable) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", *(f"{c} {k}" for c in t.columns for k in ("mean", "ci95_low", "ci95_high"))])
    for row in t.rows:
        values = []
        for c in t.columns:
            mean, low, high = t.cells.get((row, c), (None, None, None))
            values += ["" if mean is None else t.units.fmt(mean), "" if low is None else t.units.fmt(low),
                       "" if high is None else t.units.fmt(high)]
        writer.writerow([row, *values])
    return buf.getvalue()


def render(suite: str, methods: pa.Table, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} ({', '.join(FORMATS)})")
    t = paper_table(suite, methods)
    return {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}[fmt](t)


def arrow_markdown(table: pa.Table) -> str:
    """Any Arrow table (a query's answer) as a Markdown table; floats to 4 significant decimals."""
    def cell(v) -> str:
        if v is None:
            return ""
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(table.column_names) + " |", "|" + " --- |" * table.num_columns]
    lines += ["| " + " | ".join(cell(v) for v in row.values()) + " |" for row in table.to_pylist()]
    return "\n".join(lines) + "\n"
