"""The Ray Tune trainable: runs one job with the engine on whatever worker Tune chose.

A deterministic failure (JobFailed: a NaN loss, missing teacher weights) is reported as the job's
result, since retrying would fail again. Any other exception propagates, so Tune retries the job
(FailureConfig) — on a restart the engine resumes from the job's last epoch checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses

from ray import tune

from kdbench.engine import JobFailed, run_job
from kdbench.engine.device import worker_device
from kdbench.jobs import Job
from kdbench.store import Store, StoreFullError
from kdbench.suite.plugins import import_plugins

from .progress import ThrottledProgress
from .trial_io import ERROR, FINAL, STATUS, STORE_FULL, error_excerpt, record_placement, write_error


def train_job(config: dict) -> None:
    try:
        _train_job(config)
    except StoreFullError as e:  # retrying cannot help: the driver stops the suite with this one line
        tune.report({STATUS: STORE_FULL, ERROR: str(e)})


def _train_job(config: dict) -> None:
    import_plugins(config["plugins"])  # the suite's own components, registered in this worker too
    if "jobs" in config:  # a pack of jobs (resources.jobs_per_trial); loads the fused engine only then
        from .pack_trial import train_pack

        return train_pack(config)
    job = Job.from_dict(config["job"])
    device = worker_device(config["cpus"], config["gpus"])
    store = Store(config["store"])
    record_placement(store, job.job_id)
    progress = ThrottledProgress(tune.report, config["report_interval"])
    try:
        final = run_job(job, store, device=device, report=progress)
    except JobFailed as e:
        progress.flush()  # the epochs before the failure (a diverging loss is worth seeing in MLflow)
        tune.report({STATUS: "failed", ERROR: error_excerpt(e)})
        return
    except StoreFullError:
        raise
    except Exception as e:
        write_error(store, job.job_id, e)
        with contextlib.suppress(Exception):  # its finished epochs are checkpointed: a retry will not redo them
            progress.flush()
        raise  # Tune retries the job (FailureConfig); the engine resumes from its last checkpoint
    progress.flush()  # the epochs since the last progress result, before the final one
    tune.report({STATUS: "ok", FINAL: dataclasses.asdict(final)})


def with_resources(cpus: float, gpus: float):
    return tune.with_resources(train_job, {"cpu": cpus, "gpu": gpus})
