"""A suite's report: its leaderboard tables (`build_leaderboard`) and the files under <store>/leaderboards/<suite>/.

Everything is computed from the views (kdbench.results.views) over one join of the suite's latest plan with
the results (`views.jobs.load_jobs`): `write_report` reads the plan and the results once and hands the same
rows to every table, plot and page it writes.

Files: `leaderboard.html` (the methods, teacher-size and failures tables with their plots),
`methods.{csv,parquet,png}`, `teacher_size.{csv,parquet,png}`, and each view with rows as
`views/view-<view>.{html,png,csv,parquet}` (`hinton` only for suites whose reference CSV has a `paper_errors`
column). `kdbench run` logs them to the suite's MLflow parent run.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kdbench import paths as store_paths
from kdbench.store import Store

from .views import VIEWS
from .views.failures import failures
from .views.jobs import SuiteJobs, load_jobs
from .views.reference import reference_path, reference_rows

__all__ = ["Leaderboard", "build_leaderboard", "reference_path", "view_files", "write_report", "write_views"]


@dataclass(frozen=True)
class Leaderboard:
    suite: str
    jobs: SuiteJobs  # one row per planned job: plan names, result metrics, status ('pending' if no result)
    methods: pa.Table  # the `methods` view
    teacher_size: pa.Table  # the `teacher-size` view
    failures: pa.Table  # failed and skipped jobs with their errors


def build_leaderboard(store: Store | str | os.PathLike, suite: str, jobs: SuiteJobs | None = None) -> Leaderboard:
    """The suite's leaderboard tables as Arrow, from its latest plan joined with the results (read once; pass
    `jobs` from `views.jobs.load_jobs` to reuse a join):

    - `methods` (the `methods` view): every (teacher, student, chain, method, params) cell, the student alone
      included: n, failed, mean/std/95% t-interval of the test metric over seeds, the paired gain over the
      student alone with its interval, rank within (teacher, student), `chosen_by`, `paper_acc`/`paper_source`
      from the suite's reference CSV;
    - `teacher_size` (the `teacher-size` view): direct distillation from each teacher by teacher size, with the
      teacher's accuracy, the student alone (`baseline_mean`) and the paired difference against the next
      smaller teacher;
    - `failures`: failed and skipped jobs with their errors.

    `store`: a Store or what `open_results` takes (a folder or URI). Values are in the task's primary metric
    (`metric` column; accuracy as a fraction); ranks follow its direction.
    """
    store = store if isinstance(store, Store) else Store(store)
    jobs = jobs or load_jobs(store, suite)
    return Leaderboard(suite, jobs, VIEWS["methods"](store, suite, jobs), VIEWS["teacher-size"](store, suite, jobs),
                       failures(store, suite, jobs))


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _csv(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


def write_report(store: Store, suite: str, jobs: SuiteJobs | None = None) -> dict[str, str]:
    """Write the suite's leaderboard (HTML, CSV, Parquet, PNG) and study views; returns {file name: path in
    the store}. The plan and the results are read once, here (or passed in as `jobs`, from
    `views.jobs.load_jobs`), for every table, plot and page. When nothing they are computed from changed
    since the last report (fingerprint.py), the files already there are the answer: a rerun of a finished
    suite renders no plot again."""
    from .fingerprint import MANIFEST, fingerprint, reusable

    jobs = jobs or load_jobs(store, suite)
    digest = fingerprint(store, suite, jobs)
    if digest is not None and (paths := reusable(store, suite, digest)) is not None:
        return paths
    paths = _write_files(store, suite, jobs)
    if digest is not None:  # last: a report cut off half-way is rebuilt next time
        store.write_bytes(MANIFEST.format(suite=suite), json.dumps({"fingerprint": digest, "paths": paths}).encode())
    return paths


def _write_files(store: Store, suite: str, jobs: SuiteJobs) -> dict[str, str]:
    from .views.page import html_page
    from .views.plots import PLOTS
    from .views.render import RANK_NOTE, Units, caption, display_table

    tables = _view_tables(store, suite, jobs)
    pngs = {view: PLOTS[view](t) for view, t in tables.items() if t.num_rows or view in ("methods", "teacher-size")}
    methods, teacher_size = tables["methods"], tables["teacher-size"]
    images = {"methods.png": pngs["methods"], "teacher_size.png": pngs["teacher-size"]}
    # What a person reads: the display tables (percent, mean ± CI, names), with their captions; the raw values
    # are in the CSV and Parquet files beside the page.
    page = html_page(f"kdbench leaderboard: {suite}",
                     {"methods": display_table("methods", methods),
                      "teacher size": display_table("teacher-size", teacher_size),
                      "failures": failures(store, suite, jobs)}, images,
                     {"methods": caption("methods", suite, Units.of(methods.to_pylist())) + " " + RANK_NOTE,
                      "teacher size": caption("teacher-size", suite, Units.of(teacher_size.to_pylist()))})
    files = {"leaderboard.html": page.encode(), **images, "methods.csv": _csv(methods),
             "methods.parquet": _parquet(methods), "teacher_size.csv": _csv(teacher_size),
             "teacher_size.parquet": _parquet(teacher_size)}
    paths = {}
    for name, data in files.items():
        paths[name] = store_paths.leaderboard(suite, name)
        store.write_bytes(paths[name], data)
    paths.update(_write_views(store, suite, tables, pngs))
    return paths


def _view_tables(store: Store, suite: str, jobs: SuiteJobs) -> dict[str, pa.Table]:
    """Every view of the suite from one join; `hinton` (test-error counts) only for suites whose papers report
    them (a `paper_errors` column in the reference CSV)."""
    errors_study = any("paper_errors" in r for r in reference_rows(store, suite))
    return {view: fn(store, suite, jobs) for view, fn in VIEWS.items() if view != "hinton" or errors_study}


def view_files(store: Store, suite: str, view: str, table: pa.Table | None = None,
               png: bytes | None = None) -> dict[str, bytes]:
    """A view's files: its page (display table, raw table, plot), PNG, CSV and Parquet."""
    from .views.page import html_page
    from .views.plots import PLOTS
    from .views.render import Units, caption, display_table

    table = VIEWS[view](store, suite) if table is None else table
    png = PLOTS[view](table) if png is None else png
    units = Units.of(table.to_pylist())
    # The page shows what people read (percent, intervals); the raw values are in the CSV and Parquet files.
    page = html_page(caption(view, suite, units), {view: display_table(view, table)}, {f"{view}.png": png})
    # Names unlike the main leaderboard's (methods.csv …): `kdbench run` logs both by file name.
    return {f"view-{view}.html": page.encode(), f"view-{view}.png": png, f"view-{view}.csv": _csv(table),
            f"view-{view}.parquet": _parquet(table)}


def _write_views(store: Store, suite: str, tables: dict[str, pa.Table],
                 pngs: dict[str, bytes]) -> dict[str, str]:
    paths = {}
    for view, table in tables.items():
        if table.num_rows == 0:  # a suite without TA chains has no `takd` page
            continue
        for name, data in view_files(store, suite, view, table, pngs.get(view)).items():
            paths[name] = store_paths.leaderboard(suite, f"views/{name}")
            store.write_bytes(paths[name], data)
    return paths


def write_views(store: Store, suite: str, jobs: SuiteJobs | None = None) -> dict[str, str]:
    """Every non-empty view of the suite under leaderboards/<suite>/views/; returns {file name: path in the
    store}. The plan and the results are read once for all the views."""
    from .views.plots import PLOTS

    tables = _view_tables(store, suite, jobs or load_jobs(store, suite))
    return _write_views(store, suite, tables, {v: PLOTS[v](t) for v, t in tables.items() if t.num_rows})
