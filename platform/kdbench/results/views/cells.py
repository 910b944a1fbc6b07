"""What every study view reports per cell: the test metric (`jobs.score`) over seeds and the paired gain over
the student trained alone (same seeds), with 95% intervals and the not-distinguishable-from-zero marker.
Gains are differences of the metric (cell − other), whatever its direction."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from ..stats import paired, summarize
from .jobs import failed, group, metric_of, ok_scores

CELL_FIELDS = [
    pa.field("metric", pa.string()),  # the task's primary metric the statistics are of (acc, rmse, …)
    pa.field("n", pa.int64()),  # seeds with a result
    pa.field("failed", pa.int64()),  # failed or skipped jobs of the cell
    pa.field("pending", pa.int64()),  # planned jobs of the cell without a row yet (not run, or its file unreadable)
    pa.field("mean", pa.float64()),  # mean score over seeds (test accuracy: a fraction)
    pa.field("std", pa.float64()),
    pa.field("ci_low", pa.float64()),  # 95% Student-t interval of the mean, clipped to the metric's range
    pa.field("ci_high", pa.float64()),
    pa.field("alone_mean", pa.float64()),  # the student trained alone (its baseline jobs), mean over seeds
    pa.field("gain_n", pa.int64()),  # seeds both the cell and the student alone have
    pa.field("gain", pa.float64()),  # mean paired difference, cell − alone
    pa.field("gain_ci_low", pa.float64()),
    pa.field("gain_ci_high", pa.float64()),
    pa.field("gain_includes_zero", pa.bool_()),  # True: not distinguishable from zero (None: < 2 pairs)
]


def baselines(rows: Iterable[dict]) -> dict[str, dict[int, float]]:
    """student name -> seed -> score of the student trained alone (`none`; other teacher-free baselines, such as a
    representation study's `untrained` floor, are cells of their own)."""
    return {k[0]: ok_scores(v) for k, v in group((r for r in rows if r["kind"] == "baseline"
                                                  and r.get("method", "none") == "none"),
                                               lambda r: (r["student"],)).items()}


def clipped(metric, low: float | None, high: float | None) -> tuple[float | None, float | None]:
    """An interval of a metric's mean clipped to the metric's range (accuracy: [0, 1]; RMSE: [0, ∞)), where
    the t-interval of few seeds can reach past it."""
    if low is not None and metric.low is not None:
        low = max(low, metric.low)
    if high is not None and metric.high is not None:
        high = min(high, metric.high)
    return low, high


def cell(rows: list[dict], alone: dict[int, float] | None) -> dict:
    scores = ok_scores(rows)
    s = summarize(scores.values())
    g = paired(scores, alone or {})
    base = summarize((alone or {}).values())
    metric = metric_of(rows)
    low, high = clipped(metric, s.ci_low, s.ci_high)
    return {"metric": metric.name, "n": s.n, "failed": failed(rows),
            "pending": sum(r["status"] == "pending" for r in rows), "mean": s.mean, "std": s.std,
            "ci_low": low, "ci_high": high, "alone_mean": base.mean, "gain_n": g.n, "gain": g.mean,
            "gain_ci_low": g.ci_low, "gain_ci_high": g.ci_high, "gain_includes_zero": g.includes_zero}


def versus(prefix: str, rows: list[dict], other: list[dict] | None) -> dict:
    """Paired difference of this cell against another cell (e.g. a TA chain vs direct KD)."""
    g = paired(ok_scores(rows), ok_scores(other or []))
    return {f"{prefix}_n": g.n, prefix: g.mean, f"{prefix}_ci_low": g.ci_low, f"{prefix}_ci_high": g.ci_high,
            f"{prefix}_includes_zero": g.includes_zero}


def versus_fields(prefix: str) -> list[pa.Field]:
    return [pa.field(f"{prefix}_n", pa.int64()), pa.field(prefix, pa.float64()),
            pa.field(f"{prefix}_ci_low", pa.float64()), pa.field(f"{prefix}_ci_high", pa.float64()),
            pa.field(f"{prefix}_includes_zero", pa.bool_())]


def dataset_of(rows: list[dict]) -> str | None:
    return next((r["dataset"] for r in rows if r["dataset"]), None)


def first(rows: list[dict], key: str):
    return next((r[key] for r in rows if r[key] is not None), None)


def mean_of(rows: list[dict], key: str) -> float | None:
    return summarize(r[key] for r in rows if r["status"] == "ok").mean


def table(rows: list[dict], fields: list[pa.Field]) -> pa.Table:
    schema = pa.schema(fields)
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in fields} for r in rows], schema=schema)
