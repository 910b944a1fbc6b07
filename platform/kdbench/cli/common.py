"""What every `kdbench` command shares: the Typer app, its consoles, option types, one-line errors and the
suite's warnings, pruned jobs and leaderboard as printed."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

try:  # typer >= 0.26 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors


class _OneLineErrors(TyperGroup):
    """Command-line mistakes (an unknown option, `--num-cpus abc`) end like every other bad input: one
    `error:` line on stderr and exit status 2, not a usage box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click_errors.NoArgsIsHelpError as e:
            err.print(e.format_message(), highlight=False, markup=False)
            sys.exit(e.exit_code)
        except click_errors.ClickException as e:
            message = " ".join(e.format_message().split())
            command = getattr(getattr(e, "ctx", None), "command_path", None)
            err.print("[bold red]error:[/] ", end="", highlight=False)
            err.print(f"{message}" + (f" (see `{command} --help`)" if command else ""), highlight=False,
                      markup=False, soft_wrap=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            err.print("aborted", highlight=False)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(cls=_OneLineErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="kdbench: benchmark knowledge distillation — suites on Ray Tune, results in "
                       "Parquet, browsing in MLflow.")
out = Console()
if not out.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    out = Console(width=140)
err = Console(stderr=True)

if TYPE_CHECKING:
    from kdbench.results.views.jobs import SuiteJobs
    from kdbench.store import Store

@app.callback()
def _options(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show Ray's and MLflow's own log "
                                                   "lines (start-up notices, database migrations).")] = False) -> None:
    """kdbench: benchmark knowledge distillation — suites on Ray Tune, results in Parquet, browsing in MLflow."""
    if not verbose:  # kdbench says what matters itself; a user's own settings win
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("KDBENCH_RAY_LOG_LEVEL", "ERROR")


StoreOpt = Annotated[str, typer.Option("--store", envvar="KDBENCH_STORE",
                                       help="Store folder or URI (s3://…, gs://…).")]
TrackingOpt = Annotated[str | None, typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                                                 help="MLflow server; default: embedded under the store.")]
SuiteArg = Annotated[Path, typer.Argument(help="Suite YAML file.", show_default=False)]
DataRootOpt = Annotated[Path | None, typer.Option(
    "--data-root", help="Where datasets live (sets KDBENCH_DATA_ROOT; a suite's `root:` wins).")]


def _set_data_root(data_root: Path | None) -> None:
    if data_root is not None:  # read by dataset parameters' defaults when the suite loads, and by workers
        os.environ["KDBENCH_DATA_ROOT"] = str(data_root.resolve())
DEFAULT_STORE = "kdbench-store"


def fail(message: str, code: int = 2) -> typer.Exit:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # user text, not markup
    return typer.Exit(code)


def _known_errors():
    from kdbench.orchestrate.ray_session import ClusterError
    from kdbench.orchestrate.rerun import SelectorError
    from kdbench.results import QueryError
    from kdbench.store import StoreError
    from kdbench.suite import SpecError
    from kdbench.suite.limits import LimitError
    from kdbench.track.backfill import TrackingError

    return SpecError, StoreError, ClusterError, QueryError, TrackingError, LimitError, SelectorError


def _positive(name: str, value: float | None, whole: bool = False, most: float = math.inf) -> None:
    """A numeric option in 0 < value <= most (finite), refused in one line before anything starts."""
    if value is not None and not (math.isfinite(value) and 0 < value <= most):
        bound = f" and <= {most:g}" if math.isfinite(most) else ""
        raise fail(f"{name} must be {'a whole number ' if whole else 'a number '}> 0{bound} (got {value:g})")


def _report_interval() -> None:
    from kdbench.orchestrate.lease import lease_ttl
    from kdbench.orchestrate.progress import report_interval

    try:
        report_interval()
        lease_ttl()  # KDBENCH_LEASE_TTL_S, checked before anything starts too
    except ValueError as e:
        raise fail(str(e)) from None


def _guard(fn, *args, **kwargs):
    """Run `fn`, turning kdbench's own errors into one line and exit status 2."""
    try:
        return fn(*args, **kwargs)
    except _known_errors() as e:
        raise fail(str(e)) from None




def _print_warnings(lines) -> None:
    """What the suite says that is valid but probably not meant (e.g. a warm-up as long as the training)."""
    for line in lines:
        err.print(f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True)


def _print_pruned(lines: list[str]) -> None:
    """Jobs left out of the plan because their method cannot work for the pair, grouped by reason."""
    if not lines:
        return
    groups: dict[str, int] = {}
    for line in lines:  # one line per cell: its seeds give equal lines
        groups[line] = groups.get(line, 0) + 1
    err.print(f"[yellow]left out {len(lines)} job(s) whose method cannot work for the pair:[/]")
    for key, n in groups.items():
        err.print(f"  {key}" + (f" (×{n})" if n > 1 else ""), highlight=False, soft_wrap=True)


def _print_leaderboard(store: str | Store, suite: str, jobs: SuiteJobs | None = None) -> None:
    """The methods and teacher-size tables; `store` a Store or its URI, `jobs` the suite's join if already read."""
    from kdbench.results.report import build_leaderboard
    from kdbench.results.views.render import terminal_tables
    from kdbench.store import Store

    board = build_leaderboard(store if isinstance(store, Store) else Store(store), suite, jobs)
    for table in terminal_tables(board.methods, board.teacher_size):
        out.print(table)


def _print_data_uri(params: dict) -> None:
    """A dataset read from an object store is listed: the jobs' machines read it with their own credentials."""
    from kdbench.zoo.datasets.shard_cache import is_uri

    root = str(params.get("root") or "")
    if is_uri(root):
        out.print(f"data: {root} (read by the jobs' machines)", highlight=False, soft_wrap=True)
