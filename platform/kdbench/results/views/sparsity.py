"""`sparsity` view (Variational Student, Hegde et al. 2020): accuracy against compression for dense and sparse
students, alone and distilled. One row per cell (the teacher, a student alone, a student distilled a given way)
with its accuracy statistics and, over the same seeds, its deployed and non-zero parameters, its sparsity and its
compression against the teacher with a 95% interval.

- A sparse model is one whose jobs report `sparsity_report()` (kdbench/zoo/models/sparse_vd.py): the engine writes
  `deployed_params`, `nonzero_params`, `sparsity` into the job's counters. A dense model's parameters are all
  counted as non-zero (its `student_params`).
- Compression = the teacher's parameters / the model's non-zero parameters, per seed: the row's own teacher;
  for the teacher and students alone the suite's single teacher (none when the suite has several).
- `category`: teacher, dense alone, dense distilled, sparse alone, sparse distilled, and "VD net, no KL". Sparse
  means trained variationally: a model that reports its sparsity, trained by `vs` (the method that adds the VD
  KL); `vs` with λ_T = λ_g = 0 (no teacher term) is Molchanov's sparse VD alone, so "sparse alone". The same VD
  network trained by another method (`none`, `kd`: no VD KL) is the control "VD net, no KL".
- `paper_compression`: the published compression for the cell, from the suite's reference CSV.
"""

from __future__ import annotations

import pyarrow as pa

from kdbench.store import Store

from ..stats import summarize
from ..store import read_results
from .cells import CELL_FIELDS, baselines, cell, dataset_of, first, table
from .jobs import SuiteJobs, group, load_jobs, params_of
from .reference import lookup, reference_rows

ROLES = {"teacher": "teacher", "pretrained": "teacher", "baseline": "alone", "student": "distilled"}
FIELDS = [pa.field("dataset", pa.string()), pa.field("category", pa.string()), pa.field("model", pa.string()),
          pa.field("arch", pa.string()), pa.field("teacher", pa.string()), pa.field("method", pa.string()),
          pa.field("method_params", pa.string()), *CELL_FIELDS,
          pa.field("deployed_params", pa.float64()),  # mean over seeds: what the deterministic model stores
          pa.field("nonzero_params", pa.float64()),  # mean over seeds
          pa.field("sparsity", pa.float64()),  # mean over seeds: 1 − nonzero / deployed (None: a dense model)
          pa.field("compression", pa.float64()),  # mean over seeds: teacher params / non-zero params
          pa.field("compression_ci_low", pa.float64()), pa.field("compression_ci_high", pa.float64()),
          pa.field("paper_compression", pa.float64()), pa.field("paper_source", pa.string())]


def _counters(store: Store, rows: list[dict]) -> dict[str, dict[str, float]]:
    """job id -> its counters, for the finished jobs (one read of that column)."""
    ids = [r["job_id"] for r in rows if r["status"] == "ok"]
    if not ids:
        return {}
    t = read_results(store, ids, columns=["job_id", "counters"])
    return {j: dict(c or {}) for j, c in zip(t["job_id"].to_pylist(), t["counters"].to_pylist(), strict=True)}


def _teacher_alone(params: str | None, method: str | None) -> bool:
    """The cell trains with no teacher term: `vs` with λ_T = λ_g = 0 (sparse VD alone)."""
    p = params_of({"method_params": params})
    return method == "vs" and p.get("lambda_t") == 0 and p.get("lambda_g") == 0


CATEGORIES = ["teacher", "dense alone", "dense distilled", "VD net, no KL", "sparse alone", "sparse distilled"]


def _category(role: str, reports_sparsity: bool, method: str | None, params: str | None) -> str:
    if role == "teacher":
        return "teacher"
    if not reports_sparsity:
        return f"dense {role}"
    if role == "alone" or method != "vs":
        return "VD net, no KL"
    return "sparse alone" if _teacher_alone(params, method) else "sparse distilled"


def sparsity_rows(jobs: SuiteJobs, store: Store) -> list[dict]:
    counters = _counters(store, jobs.rows)
    if not any("sparsity" in c for c in counters.values()):  # no sparse model finished: not this suite's study
        return []
    teachers = {r["student_params"] for r in jobs.rows if ROLES.get(r["kind"]) == "teacher" and r["student_params"]}
    suite_teacher = next(iter(teachers)) if len(teachers) == 1 else None
    alone = baselines(jobs.rows)
    refs = reference_rows(store, jobs.suite)
    cells = group((r for r in jobs.rows if r["kind"] in ROLES),
                  lambda r: (ROLES[r["kind"]], r["student"], r["teacher"] or "", r["method"], r["method_params"]))
    out = []
    for (role, model, teacher, method, params), rows in sorted(cells.items(), key=lambda kv: kv[0]):
        ok = [r for r in rows if r["status"] == "ok"]
        reports = [counters.get(r["job_id"], {}) for r in ok]
        sparse = any("sparsity" in c for c in reports)
        deployed = [c.get("deployed_params", r["student_params"]) for r, c in zip(ok, reports, strict=True)]
        nonzero = [c.get("nonzero_params", r["student_params"]) for r, c in zip(ok, reports, strict=True)]
        ref = [(r["teacher_params"] if role == "distilled" else suite_teacher) for r in ok]
        compression = summarize(t / n for t, n in zip(ref, nonzero, strict=True) if t and n)
        kind = _category(role, sparse, method, params)
        paper, source = (lookup(refs, "paper_compression", teacher=teacher, student=model, method=method)
                         if refs and kind == "sparse distilled" else (None, None))
        out.append({"dataset": dataset_of(rows), "category": kind, "model": model, "arch": first(rows, "student_arch"),
                    "teacher": teacher or None, "method": method if role == "distilled" else None,
                    "method_params": params if role == "distilled" else None,
                    **cell(rows, alone.get(model) if role == "distilled" else None),
                    "deployed_params": summarize(x for x in deployed if x is not None).mean,
                    "nonzero_params": summarize(x for x in nonzero if x is not None).mean,
                    "sparsity": summarize(c["sparsity"] for c in reports if "sparsity" in c).mean if sparse else None,
                    "compression": compression.mean, "compression_ci_low": compression.ci_low,
                    "compression_ci_high": compression.ci_high, "paper_compression": paper, "paper_source": source})
    out.sort(key=lambda r: (r["dataset"] or "", CATEGORIES.index(r["category"]), r["model"], r["method"] or ""))
    return out


def sparsity(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    return table(sparsity_rows(jobs or load_jobs(store, suite), store), FIELDS)


def plot_sparsity(t: pa.Table) -> bytes:
    """Test accuracy against compression (log x), one point per cell with 95% intervals on both axes, shaped by
    category; the published compressions as dashed vertical lines."""
    from .plots import _errors, _figure, _no_data, _png
    from .render import Units

    rows = [r for r in t.to_pylist() if r["mean"] is not None and r["compression"]]
    if not rows:
        return _no_data("accuracy against compression")
    u = Units.of(rows)
    sc = u.metric.scale
    styles = {"teacher": ("s", "C3"), "dense alone": ("D", "0.5"), "dense distilled": ("o", "C0"),
              "VD net, no KL": ("x", "0.3"), "sparse alone": ("v", "C2"), "sparse distilled": ("^", "C1")}
    datasets = sorted({r["dataset"] or "" for r in rows})
    fig = _figure(6.5, 4.2 * len(datasets))
    for i, dataset in enumerate(datasets, 1):
        ax = fig.add_subplot(len(datasets), 1, i)
        pts = [r for r in rows if (r["dataset"] or "") == dataset]
        for category, (marker, color) in styles.items():
            mine = [r for r in pts if r["category"] == category]
            if not mine:
                continue
            xerr = [[r["compression"] - (r["compression_ci_low"] or r["compression"]) for r in mine],
                    [(r["compression_ci_high"] or r["compression"]) - r["compression"] for r in mine]]
            ax.errorbar([r["compression"] for r in mine], [sc * r["mean"] for r in mine], yerr=_errors(mine, sc),
                        xerr=xerr, fmt=marker, color=color, capsize=2, alpha=0.85, label=category)
        for r in pts:
            if r["paper_compression"]:
                ax.axvline(r["paper_compression"], color="k", linestyle="--", linewidth=0.8)
                ax.annotate(f"paper {r['paper_compression']:g}×", (r["paper_compression"], sc * r["mean"]),
                            fontsize=7, rotation=90, xytext=(2, 0), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("compression: teacher parameters / non-zero parameters")
        ax.set_ylabel(f"test {u.label}")
        ax.set_title(f"{dataset}: {u.metric.title} vs compression", fontsize=10, loc="left")
        ax.legend(fontsize=7)
    return _png(fig)
