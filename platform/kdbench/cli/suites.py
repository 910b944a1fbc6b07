"""Commands on a suite file: `validate` (plan and estimate, nothing runs), `run`, and `shards` (a dataset
converted once into the shards a suite streams)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    DEFAULT_STORE,
    DataRootOpt,
    StoreOpt,
    SuiteArg,
    TrackingOpt,
    _guard,
    _positive,
    _print_data_uri,
    _print_leaderboard,
    _print_pruned,
    _print_warnings,
    _report_interval,
    _set_data_root,
    app,
    err,
    fail,
    out,
)

if TYPE_CHECKING:
    pass


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
    from kdbench.display import SuiteProgress
    from kdbench.orchestrate import RunOptions, run_suite
    from kdbench.suite import load_suite

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
