"""PNG plots of the views (one per view, `PLOTS`), as bytes.

matplotlib is imported inside the functions (importing this module stays cheap) and figures are
built with the object API on an Agg canvas, never through pyplot: no global backend switch, no
display needed, and no figure left open in pyplot's registry.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa

from ..labels import ambiguous_methods, method_label
from .crossmodal import plot_crossmodal
from .jobs import group
from .render import Units


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
    u = Units.of(methods.to_pylist())
    sc = u.metric.scale
    heights = [len(bars) + 1 for bars in groups.values()]
    fig = _figure(8, 0.35 * sum(heights) + 0.6 * len(groups))
    axes = fig.subplots(len(groups), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, ((dataset, teacher, student), bars) in zip(axes, groups.items(), strict=True):
        means = [sc * r["mean"] for r in bars]
        colors = ["0.6" if r["teacher"] is None else "C0" for r in bars]
        errors = _errors(bars, sc)
        ax.barh(range(len(bars)), means, xerr=errors, color=colors, capsize=3)
        ax.set_yticks(range(len(bars)), [_label(r, ambiguous) for r in bars])
        ax.invert_yaxis()  # rank 1 on top
        low = min(m - e for m, e in zip(means, errors[0], strict=True))
        high = max(m + e for m, e in zip(means, errors[1], strict=True))
        pad = 0.01 * sc if u.metric.unit == "%" else 0.05 * (high - low or 1.0)
        top = sc * u.metric.high if u.metric.high is not None else high + pad
        ax.set_xlim(max(0.0, low - pad), min(top, high + pad))  # zoom in: the differences are small
        ax.set_title(f"{dataset}: {teacher or '(alone)'} → {student}", fontsize=10, loc="left")
    axes[-1].set_xlabel(f"test {u.label} (mean over seeds, 95% CI)")
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
    u = Units.of(rows)
    sc = u.metric.scale
    lines: dict[tuple, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["teacher_params"]):
        lines.setdefault((r["student"], r["method"], r["method_params"]), []).append(r)
    students = sorted({r["student"] for r in rows})
    ambiguous = ambiguous_methods(rows)
    colors = {s: f"C{i % 10}" for i, s in enumerate(students)}
    for i, ((student, method, params), pts) in enumerate(lines.items()):
        ax.errorbar([r["teacher_params"] for r in pts], [sc * r["mean"] for r in pts], yerr=_errors(pts, sc),
                    marker="os^Dv<>"[i % 7], capsize=3, color=colors[student],
                    label=f"{student}: {method_label(method, params, ambiguous)}")
    for student in students:
        base = next((r["baseline_mean"] for r in rows
                     if r["student"] == student and r["baseline_mean"] is not None), None)
        if base is not None:
            ax.axhline(sc * base, linestyle="--", color=colors[student], alpha=0.7, label=f"{student} alone")
    ax.set_xscale("log")
    ax.set_xlabel("teacher parameters")
    ax.set_ylabel(f"student test {u.label}")
    ax.legend(fontsize=8)




def _grid(n: int, width: float = 6.5, height: float = 3.6) -> tuple[Any, list]:
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig = _figure(width * cols, height * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes


def plot_takd(table: pa.Table) -> bytes:
    """Per (teacher, student, method): student accuracy against the TA's size (log x); direct KD as a solid
    reference line with its 95% band, the student alone dashed."""
    rows = [r for r in table.to_pylist() if r["mean"] is not None]
    groups = group(rows, lambda r: (r["teacher"], r["student"], r["method"], r["method_params"]))
    panels = {k: v for k, v in groups.items() if any(r["ta_params"] for r in v)}
    if not panels:
        return _no_data("TA chains")
    ambiguous = ambiguous_methods(rows)
    fig, axes = _grid(len(panels))
    for ax, ((teacher, student, method, params), members) in zip(axes, panels.items(), strict=False):
        chains = sorted((r for r in members if r["ta_params"]), key=lambda r: r["ta_params"])
        for length in sorted({r["chain_length"] for r in chains}):
            pts = [r for r in chains if r["chain_length"] == length]
            ax.errorbar([r["ta_params"] for r in pts], [100 * r["mean"] for r in pts], yerr=_errors(pts),
                        marker="o", capsize=3, label=f"{length - 2} TA(s)")
            for r in pts:
                ax.annotate(r["via"], (r["ta_params"], 100 * r["mean"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        for r in members:
            if r["via"] == "" and r["mean"] is not None:
                ax.axhline(100 * r["mean"], color="k", label="direct KD")
                if r["ci_low"] is not None:
                    ax.axhspan(100 * r["ci_low"], 100 * r["ci_high"], color="k", alpha=0.08)
            if r["via"] == "(alone)":
                ax.axhline(100 * r["mean"], color="0.5", linestyle="--", label=f"{student} alone")
        ax.set_xscale("log")
        ax.set_xlabel("TA parameters (the student's own teacher)")
        ax.set_ylabel("student test accuracy %")
        ax.set_title(f"{teacher} → TA → {student} ({method_label(method, params, ambiguous)})", fontsize=10,
                     loc="left")
        ax.legend(fontsize=8)
    return _png(fig)


def plot_eskd(table: pa.Table) -> bytes:
    """Per (student, method): student accuracy against the teacher's epoch, one line per teacher and the way
    it was taken (snapshot / retrained); KD's own stop epoch as separate lines; teacher accuracy dotted."""
    rows = [r for r in table.to_pylist() if r["mean"] is not None and r["teacher_epoch"] is not None]
    if not rows:
        return _no_data("teacher epoch")
    ambiguous = ambiguous_methods(rows)
    panels = group(rows, lambda r: (r["student"], r["method"]))
    fig, axes = _grid(len(panels))
    for ax, ((student, method), members) in zip(axes, panels.items(), strict=False):
        lines = group(members, lambda r: (r["teacher"], r["teacher_source"] == "retrained", r["method_params"]))
        twin = ax.twinx()
        for i, ((teacher, retrained, params), pts) in enumerate(lines.items()):
            pts = sorted(pts, key=lambda r: r["teacher_epoch"])
            label = f"{teacher}{' (retrained)' if retrained else ''}: {method_label(method, params, ambiguous)}"
            ax.errorbar([r["teacher_epoch"] for r in pts], [100 * r["mean"] for r in pts], yerr=_errors(pts),
                        marker="os^Dv<>"[i % 7], capsize=3, color=f"C{i % 10}", label=label)
            accs = [(r["teacher_epoch"], r["teacher_score"]) for r in pts if r["teacher_score"] is not None]
            if accs:
                twin.plot(*zip(*[(e, 100 * a) for e, a in accs], strict=True), linestyle=":", color=f"C{i % 10}")
        base = next((r["alone_mean"] for r in members if r["alone_mean"] is not None), None)
        if base is not None:
            ax.axhline(100 * base, color="0.5", linestyle="--", label=f"{student} alone")
        ax.set_xlabel("teacher epoch (when the student learned from it)")
        ax.set_ylabel("student test accuracy %")
        twin.set_ylabel("teacher test accuracy % (dotted)")
        ax.set_title(f"{student}, {method}", fontsize=10, loc="left")
        ax.legend(fontsize=7)
    return _png(fig)


def plot_ensembles(table: pa.Table) -> bytes:
    rows = table.to_pylist()
    for r in rows:
        r["chain"] = f"{r['teacher']} → {r['student']}"
    return plot_methods(pa.Table.from_pylist(rows)) if rows else _no_data("ensembles")


def plot_hinton(table: pa.Table) -> bytes:
    """Test errors per row (bars, 95% CI) with the paper's count as a black tick where it has one."""
    rows = [r for r in table.to_pylist() if r["errors"] is not None]
    if not rows:
        return _no_data("test errors")
    fig = _figure(7, 0.5 * len(rows) + 1.2)
    ax = fig.add_subplot()
    labels = [f"{r['role']}: {r['model']}" + (f" ← {r['teacher']}" if r["teacher"] else "") for r in rows]
    err = [[r["errors"] - (r["errors_ci_low"] if r["errors_ci_low"] is not None else r["errors"]) for r in rows],
           [(r["errors_ci_high"] if r["errors_ci_high"] is not None else r["errors"]) - r["errors"] for r in rows]]
    ax.barh(range(len(rows)), [r["errors"] for r in rows], xerr=err, capsize=3, color="C0", label="measured")
    papers = [(i, r["paper_errors"]) for i, r in enumerate(rows) if r["paper_errors"] is not None]
    if papers:
        ax.scatter([p for _, p in papers], [i for i, _ in papers], marker="|", s=300, color="k", label="paper")
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"test errors (of {rows[0]['test_size']})")
    ax.legend(fontsize=8)
    return _png(fig)


_ROLE_STYLE = {"teacher": ("s", "C3"), "alone": ("D", "0.4"), "distilled": ("o", "C0")}


def plot_efficiency(table: pa.Table) -> bytes:
    """Test accuracy against parameters and against batch-1 latency (log x), one point per cell with its 95%
    interval, shaped by role; the Pareto front joined by a step line and its points named."""
    rows = [r for r in table.to_pylist() if r["mean"] is not None]
    panels = [(x, front, label) for x, front, label in (
        ("params", "pareto_params", "parameters"), ("latency_ms", "pareto_latency", "batch-1 latency (ms)"))
        if any(r[x] for r in rows)]
    if not panels:
        return _no_data("size and latency")
    ambiguous = ambiguous_methods([r for r in rows if r["method"]])
    u = Units.of(rows)
    sc = u.metric.scale
    datasets = sorted({r["dataset"] or "" for r in rows})
    fig, axes = _grid(len(panels) * len(datasets))
    for ax, (dataset, (x, front, label)) in zip(axes, ((d, p) for d in datasets for p in panels), strict=False):
        pts = [r for r in rows if (r["dataset"] or "") == dataset and r[x]]
        for role, (marker, color) in _ROLE_STYLE.items():
            mine = [r for r in pts if r["role"] == role]
            if mine:
                ax.errorbar([r[x] for r in mine], [sc * r["mean"] for r in mine], yerr=_errors(mine, sc), fmt=marker,
                            color=color, capsize=2, alpha=0.8, label=role)
        best = sorted((r for r in pts if r[front]), key=lambda r: r[x])
        if best:
            ax.step([r[x] for r in best], [sc * r["mean"] for r in best], where="post", color="k", linewidth=1,
                    label="Pareto front")
            for r in best:
                name = r["model"] if r["role"] != "distilled" else \
                    f"{r['model']} ← {r['teacher']} ({method_label(r['method'], r['method_params'], ambiguous)})"
                ax.annotate(name, (r[x], sc * r["mean"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label + (f" on {pts[0]['latency_device']}" if x == "latency_ms" and pts else ""), fontsize=8)
        ax.set_ylabel(f"test {u.label}")
        ax.set_title(f"{dataset}: {u.metric.title} vs {label}", fontsize=10, loc="left")
        ax.legend(fontsize=7)
    return _png(fig)


def plot_pose(table: pa.Table) -> bytes:
    """PCK against MFLOPs per frame (log x), one point per cell with its 95% interval over seeds, by role."""
    rows = [r for r in table.to_pylist() if r["mean"] is not None and r["mflops_per_frame"]]
    if not rows:
        return _no_data("PCK and FLOPs per frame")
    u = Units.of(rows)
    sc = u.metric.scale
    datasets = sorted({r["dataset"] or "" for r in rows})
    fig, axes = _grid(len(datasets))
    for ax, dataset in zip(axes, datasets, strict=False):
        pts = [r for r in rows if (r["dataset"] or "") == dataset]
        for role, (marker, color) in _ROLE_STYLE.items():
            mine = [r for r in pts if r["role"] == role]
            if mine:
                ax.errorbar([r["mflops_per_frame"] for r in mine], [sc * r["mean"] for r in mine],
                            yerr=_errors(mine, sc), fmt=marker, color=color, capsize=2, alpha=0.8, label=role)
        for r in pts:
            name = r["model"] + (f" ({r['method']})" if r["method"] else "")
            ax.annotate(name, (r["mflops_per_frame"], sc * r["mean"]), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("MFLOPs per frame", fontsize=8)
        ax.set_ylabel(f"test {u.label}")
        ax.set_title(f"{dataset}: {u.metric.title} vs FLOPs per frame", fontsize=10, loc="left")
        ax.legend(fontsize=7)
    return _png(fig)


from .glue import plot_glue  # noqa: E402  (it reads this module's helpers when it draws)
from .sparsity import plot_sparsity  # noqa: E402  (it reads this module's helpers when it draws)

PLOTS = {"takd": plot_takd, "teacher-size": plot_teacher_size, "eskd": plot_eskd, "methods": plot_methods,
         "ensembles": plot_ensembles, "hinton": plot_hinton, "efficiency": plot_efficiency,
         "pose": plot_pose, "sparsity": plot_sparsity, "crossmodal": plot_crossmodal,
         "glue": plot_glue}
