"""Commands on a Ray cluster through the Ray Jobs API: `submit` a suite, then `status`, `logs` and `stop`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    DEFAULT_STORE,
    DataRootOpt,
    SuiteArg,
    TrackingOpt,
    _guard,
    _print_data_uri,
    _set_data_root,
    app,
    err,
    out,
)

if TYPE_CHECKING:
    pass


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
