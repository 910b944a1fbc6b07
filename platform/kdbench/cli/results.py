"""Commands that read the results store: `leaderboard` (and its study views and paper formats), `compare`,
`query` (DuckDB SQL) and `compact`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    DEFAULT_STORE,
    StoreOpt,
    _guard,
    _print_leaderboard,
    app,
    fail,
    out,
)

if TYPE_CHECKING:
    pass


@app.command()
def leaderboard(suite: Annotated[str, typer.Argument(help="Suite name.")], store: StoreOpt = DEFAULT_STORE,
                html: Annotated[Path | None, typer.Option(help="Also write the HTML page here.")] = None,
                view: Annotated[str | None, typer.Option(help="A study view: takd, teacher-size, eskd, methods, "
                                                           "ensembles, hinton, efficiency, pose, sparsity, "
                                                           "crossmodal, glue.")] = None,
                fmt: Annotated[str, typer.Option("--format", help="table (the terminal's), or the paper's table: "
                                                 "markdown, latex or csv.")] = "table") -> None:
    """Methods ranked per (dataset, teacher, student), and teacher size vs student accuracy."""
    from kdbench.results.export import FORMATS
    from kdbench.results.report import write_report
    from kdbench.results.store import suites
    from kdbench.store import Store

    if fmt != "table" and fmt not in FORMATS:  # before anything is read
        raise fail(f"unknown --format '{fmt}' (table, {', '.join(FORMATS)})")
    st = _guard(Store, store)
    if suite not in suites(st):
        known = ", ".join(suites(st)) or "none yet"
        raise fail(f"no suite '{suite}' in store {store} (suites there: {known})")
    if view is not None:
        return _print_view(st, suite, view, html)
    from kdbench.results.views.jobs import load_jobs

    jobs = load_jobs(st, suite)  # one read of the plan and the results for the tables and the page
    if fmt != "table":
        from kdbench.results.export import render
        from kdbench.results.report import build_leaderboard

        sys.stdout.write(render(suite, build_leaderboard(st, suite, jobs).methods, fmt))
        return
    _print_leaderboard(st, suite, jobs)
    if html is not None:
        paths = write_report(st, suite, jobs)
        html.write_bytes(st.read_bytes(paths["leaderboard.html"]))
        out.print(f"wrote {html}")


def _print_view(st, suite: str, view: str, html: Path | None) -> None:
    """One study view in the terminal; with --html its self-contained page (table and plot)."""
    from kdbench.results.views import VIEWS
    from kdbench.results.views.render import rich_table

    if view not in VIEWS:
        raise fail(f"unknown --view '{view}' (one of: {', '.join(VIEWS)})")
    table = VIEWS[view](st, suite)
    if table.num_rows == 0:
        out.print(f"suite {suite} has no rows for the {view} view (yet)")
    else:
        out.print(rich_table(view, suite, table))
    if html is not None:
        from kdbench.results.report import view_files

        html.write_bytes(view_files(st, suite, view, table)[f"view-{view}.html"])
        out.print(f"wrote {html}")


@app.command()
def compare(names: Annotated[list[str], typer.Argument(help="Two or more suite names.")],
            store: StoreOpt = DEFAULT_STORE,
            fmt: Annotated[str, typer.Option("--format", help="table, markdown or csv.")] = "table") -> None:
    """The same cells (teacher, student, method) of several suites side by side."""
    from kdbench.results.compare import as_table
    from kdbench.results.compare import compare as compare_suites
    from kdbench.results.store import suites
    from kdbench.store import Store

    if fmt not in ("table", "markdown", "csv"):
        raise fail(f"unknown --format '{fmt}' (table, markdown or csv)")
    if len(names) < 2 or len(set(names)) != len(names):
        raise fail("compare needs two or more different suite names")
    st = _guard(Store, store)
    known = suites(st)
    for name in names:
        if name not in known:
            raise fail(f"no suite '{name}' in store {store} (suites there: {', '.join(known) or 'none yet'})")
    try:
        result = compare_suites(st, names)
    except ValueError as e:
        raise fail(str(e)) from None
    if fmt == "markdown":
        from kdbench.results.export import arrow_markdown

        sys.stdout.write(arrow_markdown(as_table(result)))
    elif fmt == "csv":
        as_table(result).to_pandas().to_csv(sys.stdout, index=False)
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{' vs '.join(names)}: test {result.units.label} ± 95% CI over seeds",
                      title_justify="left")
        for h in result.headers:
            table.add_column(h, justify="left" if h in ("teacher", "student", "via", "method") else "right")
        for row in result.rows:
            table.add_row(*map(Text, row))
        out.print(table)


@app.command()
def query(sql: Annotated[str, typer.Argument(help="DuckDB SQL over the views `results` and `plans`.")],
          store: StoreOpt = DEFAULT_STORE,
          fmt: Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")] = "table") -> None:
    """Query the results store with SQL."""
    from kdbench.results import open_results

    if fmt not in ("table", "csv", "json", "markdown"):  # before the query runs
        raise fail(f"unknown --format '{fmt}' (table, csv, json or markdown)")
    table = _guard(lambda: open_results(store).sql(sql))
    if fmt == "csv":
        table.to_pandas().to_csv(sys.stdout, index=False)
    elif fmt == "json":
        sys.stdout.write(table.to_pandas().to_json(orient="records", indent=1) + "\n")
    elif fmt == "markdown":
        from kdbench.results.export import arrow_markdown

        sys.stdout.write(arrow_markdown(table))
    else:
        from kdbench.display import arrow_table

        out.print(arrow_table(table))


@app.command()
def compact(store: StoreOpt = DEFAULT_STORE,
            full: Annotated[bool, typer.Option("--full", help="Also merge every existing segment into one.")]
            = False) -> None:
    """Merge the per-job result files into large Parquet segments (safe while jobs are running)."""
    from kdbench.results.compact import compact as compact_results
    from kdbench.store import Store

    st = _guard(Store, store)
    out.print(_guard(compact_results, st, full).describe(), highlight=False)
