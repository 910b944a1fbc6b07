"""A trial that trains a pack of jobs (`resources.jobs_per_trial`): fused when it can, else in turn.

Each job keeps its own fate: a deterministic failure (JobFailed) is that job's result; any other
exception is written to the job's error file and propagates, so Tune retries the whole pack — and
the retry skips the jobs that already finished (their `final.json` exists), resuming the one that
was running from its checkpoint. A fused pack that cannot be fused after all (a model with dropout)
or whose fused training raises anything (one model's non-finite loss, an op `torch.vmap` refuses)
runs its jobs in turn, from scratch, and the log says why.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from ray import tune

from kdbench.engine import JobFailed, run_job
from kdbench.engine.device import worker_device
from kdbench.engine.fused import fusable, train_fused
from kdbench.engine.run import read_final
from kdbench.jobs import Job
from kdbench.store import Store

from .trial_io import PACK, STATUS, error_excerpt, record_placement, write_error

log = logging.getLogger("kdbench.orchestrate")


def run_pack(jobs: list[Job], store: Store, device: str | torch.device) -> dict[str, dict]:
    """{job id: {"final": metrics} or {"error": reason}} for every job of the pack."""
    if len(jobs) > 1 and fusable(jobs) is None and all(read_final(store, j.job_id) is None for j in jobs):
        try:
            finals = train_fused(jobs, store, device=device)
            return {j.job_id: {"final": dataclasses.asdict(f)} for j, f in zip(jobs, finals, strict=True)}
        except Exception as e:  # any failure of the fused step (e.g. an op vmap refuses): train them in turn
            log.warning("pack of %d jobs trains one job at a time: fused training failed: %s: %s", len(jobs),
                        type(e).__name__, e)
    outcomes = {}
    for job in jobs:
        try:
            outcomes[job.job_id] = {"final": dataclasses.asdict(run_job(job, store, device=device))}
        except JobFailed as e:
            outcomes[job.job_id] = {"error": error_excerpt(e)}
        except Exception as e:
            write_error(store, job.job_id, e)
            raise
    return outcomes


def train_pack(config: dict) -> None:
    jobs = [Job.from_dict(d) for d in config["jobs"]]
    device = worker_device(config["cpus"], config["gpus"])
    store = Store(config["store"])
    for job in jobs:
        record_placement(store, job.job_id)
    tune.report({STATUS: PACK, PACK: run_pack(jobs, store, device)})
