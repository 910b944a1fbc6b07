"""`run_suite`: a suite from YAML to results — plan, skip what exists, run the rest in one Tune
experiment, record every job, then write and log the leaderboard."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kdbench.results import STATUS_OK, read_plan, read_results, write_plan
from kdbench.results.unreadable import quarantine
from kdbench.store import Store
from kdbench.suite import Plan, Suite, expand, load_suite
from kdbench.suite.compat import prune_incompatible

from .integrity import corrupt_upstreams
from .progress import report_interval
from .ray_session import check_resources, init_ray
from .rerun import rerun_ids, selectors_for, set_aside
from .state import Counts, SuiteRun
from .tune_run import run_tune, trial_config

log = logging.getLogger("kdbench.orchestrate")


@dataclass(frozen=True)
class RunOptions:
    store: str = "kdbench-store"
    tracking_uri: str | None = None  # None: the embedded MLflow under the store
    track: bool = True
    address: str | None = None  # None: a local Ray
    num_cpus: int | None = None  # local Ray only
    rerun: tuple[str, ...] = ()  # selectors of jobs to recompute on purpose (orchestrate/rerun.py)


def _tracker(plan: Plan, store: Store, opts: RunOptions):
    if not opts.track:
        return None
    from kdbench.track import Tracker, resolve

    uri, artifacts = resolve(store, opts.tracking_uri)
    from kdbench.tasks import task_of

    metric = task_of(plan.suite.dataset.name).metric()  # the runs view: job runs best first by this test metric
    tracker = Tracker(uri, f"kdbench/{plan.suite.name}", artifacts, (f"test_{metric.name}", metric.higher_is_better))
    s = plan.suite
    digest = hashlib.sha256("\n".join(sorted(plan.jobs)).encode()).hexdigest()[:16]  # one parent per plan
    tracker.start_suite(f"{s.name} v{s.version}", {"suite_file": os.path.abspath(s.path), "jobs": len(plan)},
                        {"kdbench.suite": s.name, "kdbench.suite_version": str(s.version), "kdbench.plan": digest})
    return tracker


def _import_tune() -> None:
    from ray import tune  # noqa: F401

    from . import trainable, tune_adapters  # noqa: F401


def _import_report(run: SuiteRun, tuned: threading.Event) -> None:
    """What the end-of-run report imports, once the first job has started (not while the workers themselves
    start up and import); nothing if Tune ends first."""
    while run.running == 0 and not run.graph.finished:
        if tuned.wait(0.2):
            return
    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from torch.utils.flop_counter import FlopCounterMode

    from kdbench.results import stats, views  # noqa: F401  (SciPy's statistics)

    with FlopCounterMode(display=False):  # its first use imports torch._dynamo
        torch.zeros(1) + 1


def run_suite(suite: Suite | str | os.PathLike, opts: RunOptions,
              on_change: Callable[[SuiteRun], None] | None = None) -> Counts:
    """Run the suite's missing jobs. `suite`: a loaded Suite (what `kdbench run` validated and shows), or
    the path of its YAML, loaded here. Everything that can fail on bad input (the suite, the store URI,
    the cluster's resources) fails before anything is written."""
    if not isinstance(suite, Suite):
        suite = load_suite(os.fspath(suite))  # the one load of this run (it hashes teachers' weight files)
    selections = None
    report_every = report_interval()  # a bad KDBENCH_REPORT_INTERVAL_S fails here, before any work
    if suite.search is not None:  # the per-cell searches first: their choices join the plan as ordinary jobs
        from .search import run_searches

        selections = run_searches(suite, Store(opts.store), opts)
    # The suite's one full expansion (with the searches' choices: which teacher-output jobs the plan holds
    # depends on every student job, so this plan cannot be known before the selections are).
    plan, pruned = prune_incompatible(expand(suite, selections))
    store = Store(opts.store)
    # One read of the plan's rows: they decide what is done and feed MLflow's sync of cached jobs. Files that
    # cannot be read are moved aside first, and read again without them: their jobs are then recorded again.
    unreadable: dict[str, str] = {}
    table = read_results(store, plan.jobs, unreadable=unreadable)
    if unreadable:
        quarantine(store, list(unreadable))
        table = read_results(store, plan.jobs)
    every = table.to_pylist()
    attempts = {r["job_id"]: r["attempt"] or 0 for r in every}
    rows = {r["job_id"]: r for r in every if r["status"] == STATUS_OK}
    done = set(rows) - corrupt_upstreams(store, plan, set(rows))
    # `--rerun`: chosen jobs and their dependents run again (a bad selector fails here, before any work)
    again = rerun_ids(plan, selectors_for(plan, opts.rerun)) if opts.rerun else set()
    done -= again
    ray = None
    if len(done) < len(plan):
        preimport = threading.Thread(target=_import_tune, name="kdbench-import-tune", daemon=True)
        preimport.start()  # Tune and torch load (~1-2 s) while Ray starts its processes (~4 s)
        ray = init_ray(opts.address, opts.num_cpus)
        preimport.join()
        check_resources(ray, plan.suite.resources.cpus, plan.suite.resources.gpus)
    set_aside(store, again)  # once the run can go ahead: their old files moved aside, never deleted
    bad_plans: dict[str, str] = {}
    read_plan(store, plan.suite.name, unreadable=bad_plans)
    quarantine(store, list(bad_plans))  # then write_plan writes the plan again (it verifies the latest one)
    write_plan(store, plan)
    if plan.suite.reference:  # the leaderboard's `paper` column, kept with the suite's results
        from kdbench.results.views.reference import reference_path

        with open(plan.suite.reference, "rb") as f:
            store.write_bytes(reference_path(plan.suite.name), f.read())
    tracker = _tracker(plan, store, opts)
    run = SuiteRun(plan, store, done, tracker, lambda e: trial_config(e, store, plan, report_every),
                   on_change or (lambda r: None), attempts=attempts)
    run.counts.pruned = [p.describe() for p in pruned]
    try:
        _sync_cached(run, [rows[i] for i in done])
        if ray is not None:
            # What the end-of-run report imports (matplotlib; torch's FLOP counter pulls in torch._dynamo,
            # ~1.5 s) loads while the jobs train, off the path between the last job and the leaderboard.
            tuned = threading.Event()
            threading.Thread(target=_import_report, args=(run, tuned), name="kdbench-import-report",
                             daemon=True).start()
            try:
                run_tune(run, ray)
            finally:
                tuned.set()
        _compact(run.store)
        _report(run)
    finally:
        run.leases.close()  # give back what a failure left held (a crash: they expire)
        if tracker is not None:
            run.counts.tracking_complete = tracker.close()
    return run.counts


def _sync_cached(run: SuiteRun, rows: list[dict]) -> None:
    """Jobs found done: make sure MLflow has their run (a crashed driver may not have ended it)."""
    if run.tracker is None:
        return
    from kdbench.track.backfill import history_reader

    for row in rows:
        run.tracker.sync_job(row["job_id"], row, history_reader(run.store, row["job_id"]))


def _compact(store: Store) -> None:
    """Merge the per-job result files once enough have piled up: leaderboards then read a few files."""
    from kdbench.results.compact import maybe_compact

    done = maybe_compact(store)
    if done is not None:
        log.info(done.describe())


def _report(run: SuiteRun) -> None:
    from kdbench.results.report import write_report
    from kdbench.results.views import VIEWS
    from kdbench.results.views.jobs import load_jobs
    from kdbench.results.views.render import display_table

    jobs = load_jobs(run.store, run.suite)  # one read of the plan and the results for the files and MLflow
    paths = write_report(run.store, run.suite, jobs)
    if run.tracker is not None:
        # The methods leaderboard as people read it (percent, mean ± CI), for MLflow's table view.
        table = display_table("methods", VIEWS["methods"](run.store, run.suite, jobs)).to_pandas()
        files = {os.path.basename(rel): run.store.read_bytes(rel) for rel in paths.values()}
        c = run.counts
        run.tracker.log_parent(metrics={"jobs_total": c.total, "jobs_cached": c.cached, "jobs_run": c.run,
                                        "jobs_failed": c.failed, "jobs_skipped": c.skipped},
                               artifacts={f"leaderboard/{k}": v for k, v in files.items() if v is not None},
                               tables={"leaderboard/methods_table.json": table})
