"""A `pretrained` job: a teacher taken as is from a weights file, checked, evaluated and kept as its `model.pt`."""

from __future__ import annotations

import os
import socket
import time

import torch

from kdbench import checkpoint, paths
from kdbench.jobs import Job, JobFinal
from kdbench.store import Store
from kdbench.tasks import task_of
from kdbench.teachers.sources import TeacherMismatch, TeacherNotFound, checkpoint_file, file_sha256, load_weights
from kdbench.zoo.models import count_parameters, create_model

from .data import dataset_on
from .loop import evaluate
from .run import environment


def run_pretrained(job: Job, store: Store, device: torch.device, report=None) -> JobFinal:
    """A `pretrained` job: check the weights file is the one planned and fits its architecture, evaluate it,
    and keep it as the job's `model.pt`, which students, caches and integrity checks then use as any teacher's."""
    start = time.perf_counter()
    path = job.weights
    if not os.path.isfile(path):
        raise TeacherNotFound(f"teacher weights {path} not found on {socket.gethostname()} (every worker reads it)")
    if file_sha256(path) != job.method.params["sha256"]:
        raise TeacherMismatch(f"{path} changed after the suite was planned; plan it again (its id covers the content)")
    data = dataset_on(job.dataset, device)
    model = create_model(job.model.name, job.model.params, data.input_shape, data.num_classes)
    model = load_weights(model, checkpoint_file(path), path, job.model.name).to(device)
    checkpoint.save(store, paths.artifact(job.job_id, paths.MODEL), {"model": model.state_dict()})
    task = task_of(job.dataset.name)
    metrics = {f"{split}_{k}": v for split in ("test", "val") if len(getattr(data, split))  # paper: no val split
               for k, v in evaluate(task, model, getattr(data, split), task.fit_split(data))[1].items()}
    final = JobFinal(task=task.name, metrics=metrics, selected_epoch=0, epochs_trained=0,
                     student_params=count_parameters(model), wall_seconds=time.perf_counter() - start,
                     device_seconds=0.0, device=str(device), **environment())
    store.write_bytes(paths.artifact(job.job_id, paths.FINAL), final.to_json())
    return final
