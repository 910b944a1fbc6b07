"""The `kdbench` command. Bad input ends with one clear line on stderr and exit status 2."""

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


@app.command()
def validate(suite: SuiteArg,
             tflops: Annotated[float, typer.Option(help="Effective TFLOP/s of one GPU for the estimate.")] = 25.0,
             data_root: DataRootOpt = None) -> None:
    """Check a suite and print its plan's size and a compute estimate; runs nothing."""
    _positive("--tflops", tflops, most=1e9)
    _set_data_root(data_root)
    from kdbench.zoo.datasets.base import data_checked_later

    with data_checked_later() as missing:  # a machine without the data validates too (the jobs' machines check)
        _validate(suite, tflops)
    for note in dict.fromkeys(missing):
        err.print(f"[yellow]note:[/] not on this machine: {note}. `kdbench run` checks the data where the jobs "
                  "run, before the first job.", highlight=False, soft_wrap=True)


def _print_data_uri(params: dict) -> None:
    """A dataset read from an object store is listed: the jobs' machines read it with their own credentials."""
    root = str(params.get("root") or "")
    if "://" in root and not root.startswith("file://"):
        out.print(f"data: {root} (read by the jobs' machines)", highlight=False, soft_wrap=True)


def _validate(suite: Path, tflops: float) -> None:
    from kdbench.suite import expand, load_suite
    from kdbench.suite.compat import prune_incompatible
    from kdbench.suite.estimate import cache_size, estimate

    plan, pruned = _guard(lambda: prune_incompatible(expand(load_suite(str(suite)))))
    _print_warnings(plan.suite.warnings)
    _print_pruned([p.describe() for p in pruned])
    counts = plan.counts()
    s = plan.suite
    epochs = sum(e.job.epochs for e in plan.entries if e.job.kind != "teacher_outputs")
    out.print(f"[bold]{s.name}[/] v{s.version}: {len(plan)} jobs "
              f"({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}), {epochs} training epochs, "
              f"{s.resources.cpus:g} CPU / {s.resources.gpus:g} GPU per job")
    _print_data_uri(s.dataset.params)
    est = estimate(plan, tflops)
    if est is not None:
        hours = est.gpu_hours
        amount = f"{hours:,.1f} GPU-hours" if hours >= 0.1 else f"{hours * 3600:.3g} GPU-seconds"
        out.print(f"compute: {est.flops:.3g} FLOPs ≈ {amount} at {est.tflops:g} effective TFLOP/s "
                  "(forward+backward of students, forward of teachers; see --tflops)")
    n_outputs, size = cache_size(plan)
    if n_outputs:
        amount = "size unknown until the data is loaded" if size is None else f"{size:,} bytes ({size / 2**30:.3g} GiB)"
        out.print(f"teacher outputs: {n_outputs} job(s), {amount} = Σ samples × views × (classes × value bytes + 4) "
                  "(top-k: k × (value + index bytes) + 4) under artifacts/<id>/", highlight=False, soft_wrap=True)


@app.command()
def run(suite: SuiteArg, store: StoreOpt = DEFAULT_STORE, tracking_uri: TrackingOpt = None,
        no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
        address: Annotated[str | None, typer.Option(help="Ray cluster address (default: a local Ray).")] = None,
        num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray.")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or leaderboard.")] = False,
        data_root: DataRootOpt = None,
        rerun: Annotated[list[str] | None, typer.Option(
            help="Recompute matching jobs and their dependents on purpose (e.g. method=kd,seed=0; job=<id>; "
                 "all); repeatable. Their old files move under superseded/.")] = None) -> None:
    """Run a suite: every job whose result is not in the store yet, then the leaderboard."""
    _positive("--num-cpus", num_cpus, whole=True, most=1 << 16)
    from kdbench.orchestrate.rerun import parse_selector

    for text in rerun or ():
        _guard(parse_selector, text)  # a malformed selector is refused before the suite is even loaded
    _report_interval()
    _set_data_root(data_root)
    from kdbench.orchestrate import RunOptions, run_suite
    from kdbench.suite import load_suite

    from .display import SuiteProgress

    spec = _guard(load_suite, str(suite))  # validate before starting anything; the run uses this one load
    _print_warnings(spec.warnings)
    name = spec.name
    opts = RunOptions(store=store, tracking_uri=tracking_uri, track=not no_track, address=address,
                      num_cpus=num_cpus, rerun=tuple(rerun or ()))
    from kdbench.orchestrate.ray_session import terminate_like_interrupt

    terminate_like_interrupt()  # and again once Ray has started (it installs its own)
    try:
        with SuiteProgress(err, enabled=not quiet) as progress:
            counts = _guard(run_suite, spec, opts, progress.update)
    except KeyboardInterrupt:  # a second Ctrl-C (or SIGTERM) stops at once; what finished is in the store
        err.print("interrupted again: stopped at once; run the same command again to resume "
                  "(finished jobs are kept)")
        raise typer.Exit(130) from None
    if not quiet:
        _print_leaderboard(store, name)
    _print_pruned(counts.pruned)
    out.print(counts.summary(), highlight=False)
    if not counts.tracking_complete:
        err.print(f"MLflow did not get everything (the results store did): run `kdbench sync {name}` "
                  "once the tracking server answers")
    if counts.interrupted:
        err.print("interrupted: run the same command again to resume (finished jobs are kept)")
        raise typer.Exit(130)
    if counts.failed:
        raise typer.Exit(1)


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
        from .display import arrow_table

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


@app.command()
def ui(store: StoreOpt = DEFAULT_STORE, port: int = 5000,
       host: Annotated[str, typer.Option(help="Interface to bind; loopback unless you mean it.")] = "127.0.0.1",
       ) -> None:
    """Serve the embedded MLflow of the store (MLflow's UI) on 127.0.0.1."""
    _positive("--port", port, whole=True, most=65535)
    from kdbench.store import Store
    from kdbench.track.uri import embedded_artifact_root, embedded_tracking_uri, relocate

    st = _guard(Store, store)
    if not st.exists("mlflow"):
        raise fail(f"no embedded MLflow in {store}: run a suite first")
    relocate(st)  # a copied or moved store: its runs' artifacts are where the store is now
    args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", embedded_tracking_uri(st),
            "--default-artifact-root", embedded_artifact_root(st), "--host", host, "--port", str(port)]
    out.print(f"MLflow UI on http://{host}:{port} (Ctrl-C to stop)")
    for name, view in _runs_views(embedded_tracking_uri(st)):
        out.print(f"  {name}: http://{host}:{port}/{view}", highlight=False, soft_wrap=True)
    os.execv(sys.executable, args)  # no shell: nothing user-supplied is interpreted


def _runs_views(tracking_uri: str) -> list[tuple[str, str]]:
    """(experiment, its runs view: job runs best first) of every kdbench experiment (track/links.py)."""
    from mlflow import MlflowClient

    from kdbench.track.links import RUNS_VIEW_TAG

    try:
        experiments = MlflowClient(tracking_uri).search_experiments(filter_string="name LIKE 'kdbench/%'")
    except Exception:  # the UI still starts; the links are a convenience
        return []
    return sorted((e.name, e.tags[RUNS_VIEW_TAG]) for e in experiments if RUNS_VIEW_TAG in e.tags)


@app.command()
def sync(suite: Annotated[str, typer.Argument(help="Suite name.")], store: StoreOpt = DEFAULT_STORE,
         tracking_uri: TrackingOpt = None) -> None:
    """Backfill MLflow from the results store (after a tracking-server outage)."""
    from kdbench.results.store import suites
    from kdbench.store import Store
    from kdbench.track import backfill, resolve

    st = _guard(Store, store)
    if suite not in suites(st):  # before any tracking database is created
        known = ", ".join(suites(st)) or "none yet"
        raise fail(f"no suite '{suite}' in store {store} (suites there: {known})")
    uri, artifacts = _guard(resolve, st, tracking_uri)
    created = _guard(backfill, st, suite, uri, artifacts)
    out.print(f"created {created} MLflow run(s) for suite {suite}")


# -- Ray Jobs: submit a suite to a cluster and watch it --------------------------------------------

JobsAddressOpt = Annotated[str, typer.Option(
    "--address", envvar="RAY_API_SERVER_ADDRESS",
    help="The cluster's Ray dashboard (Jobs API), http://HEAD:8265.")]
JobArg = Annotated[str, typer.Argument(help="Submission id, as printed by `kdbench submit`.", show_default=False)]


def _jobs_client(address: str):
    from kdbench.orchestrate.submit import connect

    return _guard(connect, address)


@app.command()
def submit(suite: SuiteArg, address: JobsAddressOpt = "http://127.0.0.1:8265",
           store: Annotated[str, typer.Option("--store", envvar="KDBENCH_STORE",
                                              help="Store the cluster writes to: s3://…, gs://… or an "
                                                   "absolute path every node mounts.")] = DEFAULT_STORE,
           tracking_uri: TrackingOpt = None,
           no_track: Annotated[bool, typer.Option("--no-track", help="Do not log to MLflow.")] = False,
           no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the job id and return.")] = False,
           data_root: DataRootOpt = None) -> None:
    """Submit a suite to a Ray cluster through the Ray Jobs API; by default follow its logs to the end."""
    _set_data_root(data_root)
    from kdbench.orchestrate import submit as jobs
    from kdbench.suite import load_suite
    from kdbench.zoo.datasets.base import data_checked_later

    with data_checked_later() as missing:  # the cluster's nodes hold the data, maybe not this machine
        spec = _guard(load_suite, str(suite))  # bad input fails here, before anything is sent
    for note in dict.fromkeys(missing):
        err.print(f"[yellow]note:[/] not on this machine: {note}; the cluster checks it before the first job",
                  highlight=False, soft_wrap=True)
    _print_data_uri(spec.dataset.params)
    _guard(jobs.check_store, store, tracking_uri, not no_track)
    client = _jobs_client(address)
    sub = _guard(jobs.submit, client, spec, store, tracking_uri, not no_track)
    out.print(sub.job_id, highlight=False)
    err.print(f"submitted suite {spec.name} to {address}: {sub.entrypoint}", highlight=False, soft_wrap=True)
    if no_wait:
        err.print(f"follow it with `kdbench logs {sub.job_id} --follow --address {address}`", highlight=False)
        return
    _guard(jobs.follow, client, sub.job_id, lambda text: sys.stdout.write(text) and sys.stdout.flush())
    _end_with_status(client, sub.job_id)


def _end_with_status(client, job_id: str) -> None:
    from kdbench.orchestrate import submit as jobs

    info = _guard(jobs.status, client, job_id)
    state = str(getattr(info.status, "value", info.status))
    err.print(f"job {job_id}: {state}" + (f" — {info.message}" if info.message else ""), highlight=False,
              soft_wrap=True)
    if state != "SUCCEEDED":
        raise typer.Exit(1)


@app.command()
def status(job: Annotated[str | None, typer.Argument(help="Submission id; none: list the cluster's jobs.")] = None,
           address: JobsAddressOpt = "http://127.0.0.1:8265") -> None:
    """A submitted job's status and message, or a table of the cluster's jobs."""
    import datetime as dt

    from rich.table import Table

    from kdbench.orchestrate import submit as jobs

    client = _jobs_client(address)
    if job is not None:
        info = _guard(jobs.status, client, job)
        state = str(getattr(info.status, "value", info.status))
        out.print(f"{job}: {state}" + (f" — {info.message}" if info.message else ""), highlight=False,
                  soft_wrap=True)
        return

    def when(ms):
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else ""

    table = Table("job", "status", "suite", "started (UTC)", "seconds", "message")
    for info in _guard(jobs.jobs, client):
        seconds = f"{(info.end_time - info.start_time) / 1000:.0f}" if info.end_time and info.start_time else ""
        table.add_row(info.submission_id or info.job_id or "", str(getattr(info.status, "value", info.status)),
                      (info.metadata or {}).get("kdbench.suite", ""), when(info.start_time), seconds,
                      (info.message or "")[:80])
    out.print(table)


@app.command()
def logs(job: JobArg, address: JobsAddressOpt = "http://127.0.0.1:8265",
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until the job ends.")] = False) -> None:
    """A submitted job's output (the driver's `kdbench run`)."""
    from kdbench.orchestrate import submit as jobs

    client = _jobs_client(address)
    if follow:
        _guard(jobs.follow, client, job, lambda text: sys.stdout.write(text) and sys.stdout.flush())
    else:
        sys.stdout.write(_guard(jobs.logs, client, job))


@app.command()
def stop(job: JobArg, address: JobsAddressOpt = "http://127.0.0.1:8265") -> None:
    """Stop a submitted job (its finished jobs' results stay in the store; rerun to resume)."""
    from kdbench.orchestrate import submit as jobs

    client = _jobs_client(address)
    stopped = _guard(jobs.stop, client, job)
    out.print(f"{job}: stop requested" if stopped else f"{job}: had already ended", highlight=False)


if __name__ == "__main__":
    app()


@app.command()
def shards(source: Annotated[str, typer.Argument(help="imagefolder, cifar10, cifar100 or mnist.")],
           root: Annotated[Path, typer.Argument(help="The dataset's folder (an ImageFolder's holds train/ and val/).")],
           out: Annotated[Path, typer.Argument(help="A new folder for the shards; upload it to s3:// or gs:// as is.")],
           shard_mb: Annotated[float, typer.Option(help="About how many MB of images per shard.")] = 64.0) -> None:
    """Convert a dataset on disk into Parquet shards once; a suite then reads it as `name: shards`."""
    from kdbench.zoo.datasets.shard_convert import convert

    _positive("--shard-mb", shard_mb)
    try:
        done = convert(source, root, out, shard_mb)
    except (ValueError, OSError) as e:  # DatasetMissing is a FileNotFoundError: one line naming what is absent
        raise fail(str(e)) from None
    err.print(done.summary(), highlight=False, soft_wrap=True)
