"""Terminal presentation for the CLI: the progress bar of a running suite, Arrow tables as rich tables."""

from __future__ import annotations

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class SuiteProgress:
    """A live bar of resolved jobs; `update(run)` is the SuiteRun's on_change hook."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                 console=console, disable=not enabled, transient=False)
        self.task = None

    def __enter__(self) -> SuiteProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, run) -> None:
        c = run.counts
        todo = c.total - c.cached
        detail = f"{run.running} running, {c.failed} failed" + (f", {c.skipped} skipped" if c.skipped else "")
        eta = run.eta_seconds()
        if eta is not None:
            detail += f", ETA {duration(eta)}"
        jobs = run.running_jobs()
        if jobs:  # teachers first: while they train, the bar's job count stands still
            shown = ", ".join(f"{label} e{epoch}/{epochs}" for label, epoch, epochs in jobs[:MAX_SHOWN])
            detail += f" · {shown}" + (f" +{len(jobs) - MAX_SHOWN}" if len(jobs) > MAX_SHOWN else "")
        if self.task is None:
            self.task = self.progress.add_task(run.suite, total=todo, detail=detail)
        self.progress.update(self.task, completed=c.run + c.failed + c.skipped, detail=detail)


MAX_SHOWN = 3  # running jobs named on the progress line


def duration(seconds: float) -> str:
    """`45s`, `12m`, `3h05m`: an estimate, not a measurement."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h{minutes:02d}m"


def arrow_table(table: pa.Table, max_rows: int = 200) -> Table:
    out = Table(show_header=True, header_style="bold")
    for name in table.column_names:
        out.add_column(name)
    for row in table.slice(0, max_rows).to_pylist():
        out.add_row(*(_cell(v) for v in row.values()))
    if table.num_rows > max_rows:
        out.caption = f"{table.num_rows - max_rows} more rows not shown"
    return out


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)
