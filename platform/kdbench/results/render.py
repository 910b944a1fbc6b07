"""Rendering leaderboard tables: rich tables for the terminal, one self-contained HTML page.

Accuracies are stored as fractions; the terminal shows percentages and gains in percentage points.
"""

from __future__ import annotations

import base64
import html

import pyarrow as pa
from rich.table import Table
from rich.text import Text

from .labels import ambiguous_methods, method_label


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _pct_ci(mean: float | None, low: float | None, high: float | None) -> str:
    if mean is None or low is None or high is None:
        return _pct(mean)
    return f"{100 * mean:.2f} ± {100 * (high - low) / 2:.2f}"


def _gain(gain: float | None, low: float | None, high: float | None) -> str:
    if gain is None:
        return ""
    ci = "" if low is None or high is None else f" [{100 * low:+.2f}, {100 * high:+.2f}]"
    return f"{100 * gain:+.2f}{ci}"


def _count(n: int | None) -> str:
    if n is None:
        return "—"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _label(row: dict, ambiguous: set[str]) -> str:
    return method_label(row["method"], row["method_params"], ambiguous)


def _via(chain: str | None) -> str:
    """Teacher assistants of a chain displayed as 'a → b → c' (the middle names)."""
    names = (chain or "").split(" → ")
    return " → ".join(names[1:-1])


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c, justify="left" if c in ("dataset", "teacher", "student", "via", "method")
                         else "right")
    return table


def _datasets(rows: list[dict]) -> str:
    return ", ".join(sorted({r["dataset"] for r in rows if r["dataset"]}))


def _methods_table(methods: pa.Table) -> Table:
    rows = methods.to_pylist()
    ambiguous = ambiguous_methods(rows)
    papers = any(r.get("paper") is not None for r in rows)
    table = _table(f"Methods on {_datasets(rows)}: mean test accuracy % over seeds ± 95% CI; "
                   "gain over the student alone (pp)",
                   ["teacher", "student", "via", "method", "rank", "n", "failed", "test acc %",
                    "gain pp [95% CI]"] + (["paper %"] if papers else []))
    for i, r in enumerate(rows):
        group = (r["dataset"], r["teacher"], r["student"])
        last = i + 1 == len(rows) or group != (rows[i + 1]["dataset"], rows[i + 1]["teacher"],
                                               rows[i + 1]["student"])
        failed = Text(str(r["failed"]), style="red" if r["failed"] else "")
        # Text cells: names and JSON params must not be read as rich markup ("[...]").
        cells = [r["teacher"] or "(alone)", r["student"], _via(r["chain"]), _label(r, ambiguous),
                 str(r["rank"]), str(r["n"])]
        extra = [Text(_pct(r.get("paper")) if r.get("paper") is not None else "")] if papers else []
        table.add_row(*map(Text, map(str, cells)), failed,
                      Text(_pct_ci(r["mean"], r["ci_low"], r["ci_high"])),
                      Text(_gain(r["gain"], r["gain_ci_low"], r["gain_ci_high"])), *extra, end_section=last)
    return table


def _teacher_size_table(teacher_size: pa.Table) -> Table:
    rows = teacher_size.to_pylist()
    ambiguous = ambiguous_methods(rows)
    table = _table(f"Teacher size vs student accuracy on {_datasets(rows)} (direct distillation): "
                   "test accuracy % ± 95% CI",
                   ["student", "method", "teacher", "teacher size", "teacher acc %", "n", "student acc %",
                    "student alone %"])
    for r in rows:
        cells = [r["student"], _label(r, ambiguous), r["teacher"], _count(r["teacher_params"]),
                 _pct(r["teacher_test_acc"]), str(r["n"]), _pct_ci(r["mean"], r["ci_low"], r["ci_high"]),
                 _pct(r["baseline_mean"])]
        table.add_row(*map(Text, map(str, cells)))
    return table


def terminal_tables(methods: pa.Table, teacher_size: pa.Table) -> list[Table]:
    """The methods table always; teacher size vs accuracy only when the suite distilled from a teacher
    (a suite of students alone has no row for it)."""
    return [_methods_table(methods)] + ([_teacher_size_table(teacher_size)] if teacher_size.num_rows else [])


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f2f2f2; }
td.s { text-align: left; white-space: pre-wrap; max-width: 60em; }
img { max-width: 100%; }
"""


def _cell(value: object) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, float):
        return f"<td>{value:.4f}</td>"
    if isinstance(value, int):
        return f"<td>{value}</td>"
    if isinstance(value, list):
        value = " → ".join(map(str, value))
    return f'<td class="s">{html.escape(str(value))}</td>'


def _html_table(table: pa.Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.column_names)
    body = "\n".join("<tr>" + "".join(map(_cell, row.values())) + "</tr>" for row in table.to_pylist())
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html_image(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>")


def html_page(title: str, tables: dict[str, pa.Table], images: dict[str, bytes]) -> str:
    """One self-contained page: inline CSS, tables, PNGs as data URIs (no external requests)."""
    parts = [f"<h2>{html.escape(name)}</h2>\n{_html_table(t)}" for name, t in tables.items()]
    parts += [_html_image(name, png) for name, png in images.items()]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n")
