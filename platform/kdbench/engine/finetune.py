"""A `finetune` job's starting model: the upstream job's trained encoder with a fresh head for the downstream task.

The job's `start` names the upstream job (a teacher, a student alone or a distilled student) and its architecture;
its result weights (`model.pt`) are read once, the architecture's fine-tune builder (`zoo.models.hf.FINETUNE_FROM`)
turns them into a classifier of the downstream dataset's classes, loading every matching tensor. What was loaded,
what is new (the head) and what was dropped (the pre-training head) is logged and kept as
`artifacts/<job_id>/start.json`; the counts go to the job's counters. Training then is the ordinary loop with the
job's recipe and method (`none`: the task's supervised loss).
"""

from __future__ import annotations

import json
import logging

from torch import nn

from kdbench import checkpoint, paths
from kdbench.errors import CorruptArtifact, JobFailed, MissingUpstream
from kdbench.jobs import Job
from kdbench.store import Store
from kdbench.zoo.models.hf import FINETUNE_FROM

log = logging.getLogger("kdbench.engine")
START_FILE = "start.json"


def start_model(job: Job, store: Store, input_shape, num_classes: int) -> tuple[nn.Module, dict[str, float]]:
    """The model a fine-tune job trains, and its counters (tensors loaded, new and dropped)."""
    up = job.start
    if up.model.name not in FINETUNE_FROM:
        raise JobFailed(f"fine-tuning starts from one of {', '.join(FINETUNE_FROM)}, not {up.model.name}")
    rel = paths.artifact(up.job_id, paths.MODEL)
    try:
        state = checkpoint.load(store, rel)
    except CorruptArtifact as e:
        raise CorruptArtifact(f"weights of job {up.job_id} are corrupt ({e}); run the suite again") from None
    if state is None:
        raise MissingUpstream(f"weights of job {up.job_id} (the fine-tuning's start) not found in {store.uri}")
    params_cls, build = FINETUNE_FROM[up.model.name]
    model, report = build(params_cls(**up.model.params), state["model"], input_shape, num_classes)
    log.info("job %s starts from job %s: %d tensors loaded, new: %s, dropped: %s", job.job_id, up.job_id,
             len(report["loaded"]), ", ".join(report["new"]), ", ".join(report["dropped"]))
    store.write_bytes(paths.artifact(job.job_id, START_FILE), json.dumps({"from": up.job_id, **report}).encode())
    return model, {f"start_{k}_tensors": float(len(v)) for k, v in report.items()}
