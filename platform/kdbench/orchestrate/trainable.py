"""The Ray Tune trainable: runs one job with the engine on whatever worker Tune chose.

A deterministic failure (JobFailed: a NaN loss, missing teacher weights) is reported as the job's
result, since retrying would fail again. Any other exception propagates, so Tune retries the job
(FailureConfig) — on a restart the engine resumes from the job's last epoch checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import traceback

import ray
import torch
from ray import tune

from kdbench.engine import JobFailed, run_job
from kdbench.jobs import Job
from kdbench.store import Store
from kdbench.suite.load import import_plugins

from .progress import ThrottledProgress

STATUS, FINAL, ERROR = "kdbench_status", "kdbench_final", "kdbench_error"
PACK = "kdbench_pack"  # STATUS of a pack's trial, and its report's {job id: {"final": …} | {"error": …}}
ERROR_FILE = "error.txt"  # the last exception of a job's worker, read by the driver if Tune gives up
PLACEMENT_FILE = "placement.json"  # where the job last ran: Ray node id, host, pid (raylets may share a host)


def error_excerpt(exc: BaseException, limit: int = 4000) -> str:
    text = "".join(traceback.format_exception(exc))
    return f"{type(exc).__name__}: {exc}\n" + text[-limit:]


def train_job(config: dict) -> None:
    import_plugins(config["plugins"])  # the suite's own components, registered in this worker too
    if "jobs" in config:  # a pack of jobs (resources.jobs_per_trial)
        from .pack_trial import train_pack

        return train_pack(config)
    job = Job.from_dict(config["job"])
    torch.set_num_threads(max(1, int(config["cpus"])))
    device = "cuda" if config["gpus"] > 0 and torch.cuda.is_available() else "cpu"
    store = Store(config["store"])
    record_placement(store, job.job_id)
    progress = ThrottledProgress(tune.report, config["report_interval"])
    try:
        final = run_job(job, store, device=device, report=progress)
    except JobFailed as e:
        progress.flush()  # the epochs before the failure (a diverging loss is worth seeing in MLflow)
        tune.report({STATUS: "failed", ERROR: error_excerpt(e)})
        return
    except Exception as e:
        store.write_bytes(Store.artifact(job.job_id, ERROR_FILE), error_excerpt(e).encode())
        with contextlib.suppress(Exception):  # its finished epochs are checkpointed: a retry will not redo them
            progress.flush()
        raise  # Tune retries the job (FailureConfig); the engine resumes from its last checkpoint
    progress.flush()  # the epochs since the last progress result, before the final one
    tune.report({STATUS: "ok", FINAL: dataclasses.asdict(final)})


def record_placement(store: Store, job_id: str) -> None:
    """One small file per job attempt: which node ran it (kept out of the results schema)."""
    info = {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}
    store.write_bytes(Store.artifact(job_id, PLACEMENT_FILE), json.dumps(info).encode())


def with_resources(cpus: float, gpus: float):
    return tune.with_resources(train_job, {"cpu": cpus, "gpu": gpus})
