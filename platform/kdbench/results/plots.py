"""Leaderboard plots as PNG bytes.

matplotlib is imported inside the functions (importing this module stays cheap) and figures are
built with the object API on an Agg canvas, never through pyplot: no global backend switch, no
display needed, and no figure left open in pyplot's registry.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa

from .labels import ambiguous_methods, method_label


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _no_data(title: str) -> bytes:
    fig = _figure(5, 2)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{title}: no data", ha="center", va="center")
    return _png(fig)


def _errors(rows: list[dict], scale: float = 100) -> list[list[float]]:
    """Asymmetric error bars (below, above) from ci_low/ci_high; zero where there is no interval."""
    below = [scale * (r["mean"] - r["ci_low"]) if r["ci_low"] is not None else 0.0 for r in rows]
    above = [scale * (r["ci_high"] - r["mean"]) if r["ci_high"] is not None else 0.0 for r in rows]
    return [below, above]


def _label(r: dict, ambiguous: set[str]) -> str:
    if r["teacher"] is None:
        return f"{r['student']} alone"
    label = method_label(r["method"], r["method_params"], ambiguous)
    return f"{label} ({r['chain']})" if r["chain"].count(" → ") >= 2 else label  # a TA chain


def _method_groups(methods: pa.Table) -> dict[tuple, list[dict]]:
    """(dataset, teacher, student) -> bars; the student-alone baseline is appended to each of its groups."""
    rows = [r for r in methods.to_pylist() if r["mean"] is not None]
    baselines = {(r["dataset"], r["student"]): r for r in rows if r["teacher"] is None}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["teacher"] is not None:
            groups.setdefault((r["dataset"], r["teacher"], r["student"]), []).append(r)
    for (dataset, _, student), bars in groups.items():
        if (dataset, student) in baselines:
            bars.append(baselines[(dataset, student)])
    shown = {(d, s) for d, _, s in groups}
    for key, b in baselines.items():  # a student with a baseline but no distilled run yet
        if key not in shown:
            groups[(key[0], None, key[1])] = [b]
    return groups


def plot_methods(methods: pa.Table) -> bytes:
    """Per (dataset, teacher, student): horizontal bars of mean test accuracy (%) with 95% CIs."""
    groups = _method_groups(methods)
    ambiguous = ambiguous_methods(methods.to_pylist())
    if not groups:
        return _no_data("methods")
    heights = [len(bars) + 1 for bars in groups.values()]
    fig = _figure(8, 0.35 * sum(heights) + 0.6 * len(groups))
    axes = fig.subplots(len(groups), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, ((dataset, teacher, student), bars) in zip(axes, groups.items(), strict=True):
        means = [100 * r["mean"] for r in bars]
        colors = ["0.6" if r["teacher"] is None else "C0" for r in bars]
        errors = _errors(bars)
        ax.barh(range(len(bars)), means, xerr=errors, color=colors, capsize=3)
        ax.set_yticks(range(len(bars)), [_label(r, ambiguous) for r in bars])
        ax.invert_yaxis()  # rank 1 on top
        low = min(m - e for m, e in zip(means, errors[0], strict=True))
        high = max(m + e for m, e in zip(means, errors[1], strict=True))
        ax.set_xlim(max(0.0, low - 1), min(100.0, high + 1))  # zoom in: the differences are small
        ax.set_title(f"{dataset}: {teacher or '(alone)'} → {student}", fontsize=10, loc="left")
    axes[-1].set_xlabel("test accuracy % (mean over seeds, 95% CI)")
    return _png(fig)


def plot_teacher_size(table: pa.Table) -> bytes:
    """Student accuracy vs teacher parameter count (log x), one line per (student, method) and dataset."""
    rows = [r for r in table.to_pylist() if r["teacher_params"] is not None and r["mean"] is not None]
    if not rows:
        return _no_data("teacher size")
    datasets = sorted({r["dataset"] for r in rows})
    fig = _figure(7, 4 * len(datasets))
    axes = fig.subplots(len(datasets), 1, squeeze=False)[:, 0]
    for ax, dataset in zip(axes, datasets, strict=True):
        _teacher_size_axes(ax, [r for r in rows if r["dataset"] == dataset])
        ax.set_title(dataset, fontsize=10, loc="left")
    return _png(fig)


def _teacher_size_axes(ax: Any, rows: list[dict]) -> None:
    """One line per (student, method): colour by student, marker by method; dashed: the student alone."""
    lines: dict[tuple, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["teacher_params"]):
        lines.setdefault((r["student"], r["method"], r["method_params"]), []).append(r)
    students = sorted({r["student"] for r in rows})
    ambiguous = ambiguous_methods(rows)
    colors = {s: f"C{i % 10}" for i, s in enumerate(students)}
    for i, ((student, method, params), pts) in enumerate(lines.items()):
        ax.errorbar([r["teacher_params"] for r in pts], [100 * r["mean"] for r in pts], yerr=_errors(pts),
                    marker="os^Dv<>"[i % 7], capsize=3, color=colors[student],
                    label=f"{student}: {method_label(method, params, ambiguous)}")
    for student in students:
        base = next((r["baseline_mean"] for r in rows
                     if r["student"] == student and r["baseline_mean"] is not None), None)
        if base is not None:
            ax.axhline(100 * base, linestyle="--", color=colors[student], alpha=0.7, label=f"{student} alone")
    ax.set_xscale("log")
    ax.set_xlabel("teacher parameters")
    ax.set_ylabel("student test accuracy %")
    ax.legend(fontsize=8)
