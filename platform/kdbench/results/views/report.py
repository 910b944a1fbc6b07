"""Writing the study views under the store: leaderboards/<suite>/views/view-<view>.{html,png,csv,parquet}.

Only views with rows are written (a suite without TA chains has no `takd` page); `hinton` (test-error
counts) only for suites whose reference CSV has a `paper_errors` column. `kdbench run` logs
these files to the suite's MLflow parent run with the rest of the leaderboard.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kdbench.store import Store

from ..render import html_page
from . import VIEWS
from .plots import PLOTS
from .render import caption, display_table


def view_files(store: Store, suite: str, view: str, table: pa.Table | None = None) -> dict[str, bytes]:
    table = VIEWS[view](store, suite) if table is None else table
    png = PLOTS[view](table)
    page = html_page(caption(view, suite), {view: display_table(view, table), f"{view} (raw)": table},
                     {f"{view}.png": png})
    csv, parquet = io.BytesIO(), io.BytesIO()
    pacsv.write_csv(table, csv)
    pq.write_table(table, parquet)
    # Names unlike the main leaderboard's (methods.csv …): `kdbench run` logs both by file name.
    return {f"view-{view}.html": page.encode(), f"view-{view}.png": png, f"view-{view}.csv": csv.getvalue(),
            f"view-{view}.parquet": parquet.getvalue()}


def write_views(store: Store, suite: str) -> dict[str, str]:
    """Every non-empty view of the suite; returns {file name: path in the store}. The plan and the
    results are read once for all the views."""
    from .jobs import load_jobs
    from .reference import reference_rows

    paths = {}
    errors_study = any("paper_errors" in r for r in reference_rows(store, suite))
    jobs = load_jobs(store, suite)
    for view, fn in VIEWS.items():
        if view == "hinton" and not errors_study:  # test-error counts: for suites whose papers report them
            continue
        table = fn(store, suite, jobs)
        if table.num_rows == 0:
            continue
        for name, data in view_files(store, suite, view, table).items():
            paths[name] = f"leaderboards/{suite}/views/{name}"
            store.write_bytes(paths[name], data)
    return paths
