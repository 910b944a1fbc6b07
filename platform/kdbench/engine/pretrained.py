"""A `pretrained` job: a teacher taken as is from a weights file, checked, evaluated and kept as its `model.pt`."""

from __future__ import annotations

import json
import os
import socket
import time

import torch

from kdbench import checkpoint
from kdbench.teachers.load import MODEL_FILE
from kdbench.teachers.sources import TeacherMismatch, TeacherNotFound, checkpoint_file, file_sha256, load_weights
from kdbench.zoo.models import count_parameters, create_model

from .data import dataset_on
from .loop import accuracy, predict


def run_pretrained(job, store, device: torch.device) -> dict:
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
    checkpoint.save(store, store.artifact(job.job_id, MODEL_FILE), {"model": model.state_dict()})
    final = {"test_acc": float(accuracy(predict(model, data.test), data.test)),
             "val_acc": float(accuracy(predict(model, data.val), data.val)), "selected_epoch": 0, "epochs_trained": 0,
             "student_params": count_parameters(model), "restarts": [], "host": socket.gethostname(),
             "wall_seconds": time.perf_counter() - start, "device": str(device), "torch_version": torch.__version__}
    store.write_bytes(store.artifact(job.job_id, "final.json"), json.dumps(final).encode())
    return final
