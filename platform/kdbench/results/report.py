"""A suite's leaderboard from the store, and its files under <store>/leaderboards/<suite>/."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kdbench.store import Store

from .leaderboard import (
    REFERENCE_COLUMNS,
    failures,
    methods_leaderboard,
    suite_view,
    teacher_size_table,
    with_reference,
)
from .plots import plot_methods, plot_teacher_size
from .render import html_page
from .store import read_plan, read_results


@dataclass(frozen=True)
class Leaderboard:
    suite: str
    view: pa.Table  # one row per planned job: plan names, result metrics, status ('pending' if no result)
    methods: pa.Table
    teacher_size: pa.Table
    failures: pa.Table


def _suite_results(store: Store, suite: str, plan: pa.Table) -> pa.Table:
    if plan.num_rows:  # every row: suite_view's join on the plan's job ids keeps this suite's jobs
        return read_results(store)  # (filtering here first would hash the ids twice)
    results = read_results(store)  # no plan recorded: the rows this suite's runs wrote
    return results.filter(pc.equal(results["suite"], suite))


def reference_path(suite: str) -> str:
    """Where a run keeps the suite's table of published accuracies, if it declares one."""
    return f"references/{suite}.csv"


def _reference(store: Store, suite: str) -> pa.Table | None:
    data = store.read_bytes(reference_path(suite))
    if data is None:
        return None
    types = {"teacher": pa.string(), "student": pa.string(), "method": pa.string(), "paper_acc": pa.float64(),
             "source": pa.string()}
    table = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(column_types=types,
                                                                                 strings_can_be_null=True))
    return table.select(REFERENCE_COLUMNS)


def build_leaderboard(store: Store, suite: str) -> Leaderboard:
    plan = read_plan(store, suite)
    view = suite_view(_suite_results(store, suite, plan), plan)
    methods = with_reference(methods_leaderboard(view), _reference(store, suite))
    return Leaderboard(suite, view, methods, teacher_size_table(view), failures(view))


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _csv(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


def write_report(store: Store, suite: str) -> dict[str, str]:
    """Write the suite's leaderboard (HTML, CSV, Parquet, PNG) and study views; returns {file name: path in
    the store}. When nothing they are computed from changed since the last report (fingerprint.py), the
    files already there are the answer: a rerun of a finished suite renders no plot again."""
    from .fingerprint import MANIFEST, fingerprint, reusable

    digest = fingerprint(store, suite)
    if digest is not None and (paths := reusable(store, suite, digest)) is not None:
        return paths
    paths = _write_files(store, suite)
    if digest is not None:  # last: a report cut off half-way is rebuilt next time
        store.write_bytes(MANIFEST.format(suite=suite), json.dumps({"fingerprint": digest, "paths": paths}).encode())
    return paths


def _write_files(store: Store, suite: str) -> dict[str, str]:
    lb = build_leaderboard(store, suite)
    images = {"methods.png": plot_methods(lb.methods), "teacher_size.png": plot_teacher_size(lb.teacher_size)}
    tables = {"methods": lb.methods, "teacher_size": lb.teacher_size, "failures": lb.failures}
    page = html_page(f"kdbench leaderboard: {suite}", tables, images)
    files = {"leaderboard.html": page.encode(), **images}
    for name in ("methods", "teacher_size"):
        files[f"{name}.csv"] = _csv(tables[name])
        files[f"{name}.parquet"] = _parquet(tables[name])
    paths = {}
    for name, data in files.items():
        paths[name] = f"leaderboards/{suite}/{name}"
        store.write_bytes(paths[name], data)
    from .views.report import write_views  # the study views (takd, teacher-size, eskd, …) that have rows

    paths.update(write_views(store, suite))
    return paths
