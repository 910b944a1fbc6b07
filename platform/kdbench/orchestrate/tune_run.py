"""One Ray Tune experiment over a `SuiteRun`: every job of its plan in DAG order, recorded as it ends.

Used by the runner (the suite's plan) and by the searches (the teacher jobs a search needs first); it
knows nothing of either, so both import it and neither imports the other's internals.
"""

from __future__ import annotations

import contextlib
import os

from kdbench.store import Store, full_disk
from kdbench.suite.plan import Plan, PlanEntry

from .progress import DEFAULT_INTERVAL_S
from .state import SuiteRun


def trial_config(entry: PlanEntry, store: Store, plan: Plan, report_every: float = DEFAULT_INTERVAL_S) -> dict:
    """A job's Tune config; `report_every`: seconds between its progress results (progress.py)."""
    res = plan.suite.resources
    return {"job_id": entry.job_id, "job": entry.job.to_dict(), "store": store.uri,
            "cpus": res.cpus, "gpus": res.gpus, "plugins": list(plan.suite.plugins), "report_interval": report_every}


def _job_name(trial) -> str:
    return f"job-{trial.config['job_id']}"


def run_tune(run: SuiteRun, ray) -> None:
    """Run the plan's pending jobs in one Tune experiment, then close the run (what did not end was interrupted)."""
    from ray import tune

    from .trainable import with_resources
    from .tune_adapters import AbortStopper, DagSearcher, QueueScheduler, RecordingCallback

    res = run.plan.suite.resources
    # Tune's experiment state lives in the store, so every node of a cluster sees the same place
    # (Ray requires a shared storage_path for multi-node runs); on an object store through its
    # pyarrow filesystem. Trials report no Tune checkpoints: the engine checkpoints into the store.
    storage, storage_fs = run.store.path("ray"), (None if run.store.local else run.store.fs)
    tuner = tune.Tuner(
        with_resources(res.cpus, res.gpus),
        tune_config=tune.TuneConfig(search_alg=DagSearcher(run), scheduler=QueueScheduler(), num_samples=-1,
                                    reuse_actors=True,
                                    trial_name_creator=_job_name, trial_dirname_creator=_job_name),
        run_config=tune.RunConfig(
            name=run.suite, storage_path=storage, storage_filesystem=storage_fs, verbose=0,
            callbacks=[RecordingCallback(run)], stop=AbortStopper(run),
            failure_config=tune.FailureConfig(max_failures=run.plan.suite.retries),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
    )
    run.slots = _slots(ray, res.cpus, res.gpus)  # `jobs_per_trial: auto` packs no fewer trials than this
    try:
        with _pending_trials(run.slots):
            tuner.fit()
    except Exception as e:  # Tune writes its experiment state into the store too: a full disk stops it there
        full = full_disk(e, run.store.uri)
        if full is None:
            raise
        run.abort = run.abort or full
    run.close()
    if run.abort is not None:
        raise run.abort


def _slots(ray, cpus: float, gpus: float) -> int:
    """How many jobs the cluster can run at once (at least one)."""
    have = ray.cluster_resources()
    fits = [have.get("CPU", 0) / cpus if cpus > 0 else None, have.get("GPU", 0) / gpus if gpus > 0 else None]
    return max(1, int(min((f for f in fits if f is not None), default=1)))


@contextlib.contextmanager
def _pending_trials(n: int):
    """Let Tune start `n` trials' actors at once. With a custom searcher Tune keeps ONE trial pending:
    on a cluster a job then waits for its actor's start-up (seconds: runtime env, imports) while
    the last finished actor takes it instead, so short jobs all run on one node, one at a time."""
    key = "TUNE_MAX_PENDING_TRIALS_PG"
    if key in os.environ:  # the user's choice
        yield
        return
    os.environ[key] = str(n)
    try:
        yield
    finally:
        os.environ.pop(key, None)
