"""Leaderboards: pure functions from the results (and a suite's plan) to Arrow tables.

A suite's view takes the names from its plan and the metrics from the results, joined on job id:
a job shared by two suites has one result but may carry different names in each. Aggregates are
over seeds; intervals are 95% Student-t intervals of the mean (null below two seeds). Pending jobs
(planned, no result yet) are in the view but in no aggregate.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from scipy import stats

_METRICS = ["error", "test_acc", "val_acc", "teacher_test_acc", "teacher_agreement", "teacher_params",
            "student_params", "wall_seconds"]
_NAMES = ["job_id", "kind", "dataset", "teacher", "student", "method", "method_params", "chain", "seed"]
_VIEW_ORDER = (" ORDER BY dataset NULLS LAST, kind, teacher NULLS FIRST, student, method, method_params,"
               " seed, job_id")
_CELL = ["dataset", "teacher", "student", "chain", "method", "method_params"]


_DB = duckdb.connect()  # one in-memory database; a cursor per query (a new connection costs ~20 ms)


def _sql(query: str, **tables: pa.Table) -> pa.Table:
    con = _DB.cursor()  # registrations are local to the cursor, so concurrent callers do not collide
    try:
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(query).to_arrow_table()
    finally:
        con.close()


def t_intervals(n: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Student-t intervals of means, vectorised (one scipy call for a whole table); NaN below 2 seeds."""
    n = np.asarray(n, dtype=float)
    ok = (n >= 2) & np.isfinite(mean) & np.isfinite(std)
    half = np.full(n.shape, np.nan)
    half[ok] = stats.t.ppf(0.975, n[ok] - 1) * std[ok] / np.sqrt(n[ok])
    return mean - half, mean + half


def _add_interval(table: pa.Table, n: str, mean: str, std: str, names: tuple[str, str]) -> pa.Table:
    cols = [table[c].to_numpy(zero_copy_only=False).astype(float) for c in (n, mean, std)]  # nulls -> NaN
    for name, bound in zip(names, t_intervals(*cols), strict=True):
        table = table.append_column(name, pa.array(bound, pa.float64(), from_pandas=True))  # NaN -> null
    return table


def suite_view(results: pa.Table, plan: pa.Table | None = None) -> pa.Table:
    """One row per planned job: the plan's names, the result's status ('pending' if none) and metrics.

    Without a plan, the results' own names are used.
    """
    if plan is None or plan.num_rows == 0:
        query = f"SELECT {', '.join(_NAMES)}, status, {', '.join(_METRICS)} FROM r"
        return _sql(query + _VIEW_ORDER, r=results)
    names = ", ".join("r.dataset" if c == "dataset" else f"p.{c}" for c in _NAMES)  # the plan has no dataset
    metrics = ", ".join(f"r.{c}" for c in _METRICS)
    query = (f"SELECT {names}, coalesce(r.status, 'pending') AS status, {metrics} "
             "FROM p LEFT JOIN r ON p.job_id = r.job_id")
    return _sql(query + _VIEW_ORDER, p=plan, r=results)


# Cells are (dataset, teacher, student, chain, method, method_params); a baseline's teacher is null.
# `base` holds the baseline's per-seed accuracy, the partner of the paired gain interval.
_METHODS_SQL = """
WITH jobs AS (
  SELECT dataset, teacher, student, array_to_string(chain, ' → ') AS chain, method, method_params, kind, seed,
         status, CASE WHEN status = 'ok' THEN test_acc END AS acc
  FROM v WHERE kind IN ('student', 'baseline') AND status <> 'pending'),
cells AS (
  SELECT dataset, teacher, student, chain, method, method_params, bool_or(kind = 'baseline') AS is_baseline,
         count(acc) AS n, count(*) FILTER (WHERE status IN ('failed', 'skipped')) AS failed,
         avg(acc) AS mean, stddev_samp(acc) AS std
  FROM jobs GROUP BY ALL),
base AS (
  SELECT dataset, student, seed, avg(acc) AS acc FROM jobs
  WHERE kind = 'baseline' AND acc IS NOT NULL GROUP BY ALL),
base_mean AS (SELECT dataset, student, avg(mean) AS mean FROM cells WHERE is_baseline GROUP BY ALL),
gains AS (
  SELECT r.dataset, r.teacher, r.student, r.chain, r.method, r.method_params,
         count(*) AS n_paired, avg(r.acc - b.acc) AS d_mean, stddev_samp(r.acc - b.acc) AS d_std
  FROM jobs r JOIN base b ON r.dataset = b.dataset AND r.student = b.student AND r.seed = b.seed
  WHERE r.kind <> 'baseline' AND r.acc IS NOT NULL GROUP BY ALL)
SELECT c.dataset, c.teacher, c.student, c.chain, c.method, c.method_params, c.n, c.failed, c.mean, c.std,
       CASE WHEN NOT c.is_baseline THEN c.mean - bm.mean END AS gain, g.n_paired, g.d_mean, g.d_std,
       rank() OVER (PARTITION BY c.dataset, c.teacher, c.student ORDER BY c.mean DESC NULLS LAST) AS "rank"
FROM cells c
LEFT JOIN base_mean bm ON c.dataset = bm.dataset AND c.student = bm.student
LEFT JOIN gains g ON {same_cell}
ORDER BY c.dataset, c.student, c.teacher NULLS FIRST, "rank", c.method, c.chain, c.method_params
""".format(same_cell=" AND ".join(f"c.{k} IS NOT DISTINCT FROM g.{k}" for k in _CELL))

METHODS_COLUMNS = [*_CELL, "n", "failed", "mean", "std", "ci_low", "ci_high", "gain", "gain_ci_low",
                   "gain_ci_high", "rank"]


def methods_leaderboard(view: pa.Table) -> pa.Table:
    """Student and baseline cells ranked by mean test accuracy within (dataset, teacher, student).

    gain = cell mean - baseline mean (same dataset and student); its interval is over the paired
    per-seed differences on the seeds both have.
    """
    table = _sql(_METHODS_SQL, v=view)
    table = _add_interval(table, "n", "mean", "std", ("ci_low", "ci_high"))
    table = _add_interval(table, "n_paired", "d_mean", "d_std", ("gain_ci_low", "gain_ci_high"))
    return table.select(METHODS_COLUMNS)


_TEACHER_SIZE_SQL = """
WITH base AS (
  SELECT dataset, student, avg(test_acc) AS baseline_mean FROM v
  WHERE kind = 'baseline' AND status = 'ok' GROUP BY ALL),
cells AS (
  SELECT dataset, student, method, method_params, teacher, max(teacher_params) AS teacher_params,
         avg(teacher_test_acc) AS teacher_test_acc, count(test_acc) AS n, avg(test_acc) AS mean,
         stddev_samp(test_acc) AS std
  FROM v WHERE kind = 'student' AND status = 'ok' AND len(chain) = 2 GROUP BY ALL)
SELECT c.*, b.baseline_mean FROM cells c
LEFT JOIN base b ON c.dataset = b.dataset AND c.student = b.student
ORDER BY c.dataset, c.student, c.method, c.method_params, c.teacher_params NULLS LAST, c.teacher
"""

TEACHER_SIZE_COLUMNS = ["dataset", "student", "method", "method_params", "teacher", "teacher_params",
                        "teacher_test_acc", "n", "mean", "std", "ci_low", "ci_high", "baseline_mean"]


def teacher_size_table(view: pa.Table) -> pa.Table:
    """Direct distillation only (chain teacher → student): student accuracy per teacher, with its size."""
    table = _add_interval(_sql(_TEACHER_SIZE_SQL, v=view), "n", "mean", "std", ("ci_low", "ci_high"))
    return table.select(TEACHER_SIZE_COLUMNS)


def failures(view: pa.Table) -> pa.Table:
    """Failed and skipped jobs with their errors (pending jobs have not failed, so they are not here)."""
    query = ("SELECT job_id, kind, student, teacher, method, seed, status, error FROM v "
             "WHERE status IN ('failed', 'skipped') ORDER BY status, kind, student, teacher, method, seed")
    return _sql(query, v=view)


REFERENCE_COLUMNS = ["teacher", "student", "method", "paper_acc", "source"]


def with_reference(methods: pa.Table, reference: pa.Table | None) -> pa.Table:
    """The methods table with `paper` (a fraction) and `paper_source` from a table of published accuracies
    in percent (REFERENCE_COLUMNS; an empty teacher means the student trained alone)."""
    if reference is None or reference.num_rows == 0:
        nulls = pa.nulls(methods.num_rows)
        return methods.append_column("paper", nulls.cast(pa.float64())).append_column("paper_source",
                                                                                    nulls.cast(pa.string()))
    sql = """SELECT m.*, r.paper_acc / 100.0 AS paper, r.source AS paper_source FROM m
             LEFT JOIN r ON coalesce(m.teacher, '') = coalesce(r.teacher, '') AND m.student = r.student
                        AND m.method = r.method
                        AND len(string_split(m.chain, ' → ')) <= 2  -- papers report direct distillation"""
    order = methods.column_names + ["paper", "paper_source"]
    keyed = methods.append_column("_row", pa.array(range(methods.num_rows)))
    joined = _sql(sql + " ORDER BY m._row", m=keyed, r=reference)
    return joined.select(order)
