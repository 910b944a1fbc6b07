"""`run_job`: train one job — a teacher, a baseline, or a student distilled from its teachers.

Plain PyTorch: no Ray, no MLflow. Progress goes to an optional `report(metrics)` callback once
per epoch. After every epoch the full training state is checkpointed under
`artifacts/<job_id>/last.pt`, so a job that is interrupted resumes from its last finished epoch.
The job's result weights (`model.pt`, read by downstream jobs) are the validation-selected epoch's
(or the last epoch's, with `select: last` or a stop epoch); test accuracy is measured once, on them.
"""

from __future__ import annotations

import copy
import json
import platform
import socket
import time
from collections.abc import Callable
from typing import Any

import torch

from kdbench.methods import MethodContext, TrainState, create_method
from kdbench.spec.job import Job
from kdbench.store import Store
from kdbench.teachers.load import MODEL_FILE, load_teacher
from kdbench.version import __version__
from kdbench.zoo.models import count_parameters, create_model

from . import checkpoint
from .data import dataset_on
from .loop import accuracy, predict, train_epoch
from .optim import build_optimizer, build_scheduler

LAST, FINAL, HISTORY = "last.pt", "final.json", "history.json"
Report = Callable[[dict[str, Any]], None]


def run_job(job: Job, store: Store, *, device: str | torch.device = "cpu", report: Report | None = None) -> dict:
    """Train `job` (or finish it, if a checkpoint exists) and return its final metrics."""
    start = time.perf_counter()
    job_id = job.job_id
    done = store.read_bytes(Store.artifact(job_id, FINAL))
    if done is not None:  # finished earlier, e.g. before an interrupted driver recorded it
        return json.loads(done)
    device = torch.device(device)
    torch.manual_seed(job.seed)
    data = dataset_on(job.dataset, device)
    recipe = job.recipe
    model = create_model(job.model.name, job.model.params, data.input_shape, data.num_classes).to(device)
    teacher = load_teacher(job, store, data.input_shape, data.num_classes, device)
    ctx = MethodContext(num_classes=data.num_classes, num_train=len(data.train))
    method = create_method(job.method.name, job.method.params, ctx).to(device)
    optimizer = build_optimizer([*model.parameters(), *method.parameters()], recipe["optimizer"])
    scheduler = build_scheduler(optimizer, recipe)

    state = checkpoint.load(store, Store.artifact(job_id, LAST))
    first_epoch, best, history = 0, {"val_acc": -1.0, "epoch": 0, "model": None}, []
    if state is not None:
        model.load_state_dict(state["model"])
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        first_epoch, best, history = state["epoch"], state["best"], json.loads(state["history"])

    epochs = job.stop_epoch or recipe["epochs"]
    train_seconds = sum(h["epoch_seconds"] for h in history)
    for epoch in range(first_epoch, epochs):
        t0 = time.perf_counter()
        metrics = train_epoch(model, method, teacher, data.train, optimizer, recipe["batch_size"],
                              job.seed, TrainState(epoch, recipe["epochs"]))
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        scheduler.step()
        val_acc = float(accuracy(predict(model, data.val), data.val))
        if val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": epoch + 1, "model": copy.deepcopy(model.state_dict())}
        metrics.update(epoch=epoch + 1, val_acc=val_acc, epoch_seconds=time.perf_counter() - t0)
        train_seconds += metrics["epoch_seconds"]
        history.append(metrics)
        checkpoint.save(store, Store.artifact(job_id, LAST), {
            "model": model.state_dict(), "method": method.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch + 1,
            "best": best, "history": json.dumps(history)})
        if report is not None:
            report(metrics)

    select_last = recipe["select"] == "last" or job.stop_epoch is not None
    if not select_last and best["model"] is not None:
        model.load_state_dict(best["model"])
    selected_epoch = epochs if select_last else best["epoch"]
    checkpoint.save(store, Store.artifact(job_id, MODEL_FILE), {"model": model.state_dict()})

    preds = predict(model, data.test)
    final: dict[str, Any] = {
        "test_acc": float(accuracy(preds, data.test)),
        "val_acc": float(accuracy(predict(model, data.val), data.val)),
        "selected_epoch": selected_epoch,
        "epochs_trained": epochs,
        "student_params": count_parameters(model),
        "teacher_params": count_parameters(teacher) if teacher is not None else None,
        **_teacher_metrics(teacher, data, preds),
        "final_train_loss": history[-1]["train_loss"] if history else None,
        "wall_seconds": time.perf_counter() - start,
        "train_seconds": train_seconds,
        "device": str(device),
        "host": socket.gethostname(),
        "kdbench_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }
    store.write_bytes(Store.artifact(job_id, HISTORY), json.dumps(history).encode())
    store.write_bytes(Store.artifact(job_id, FINAL), json.dumps(final).encode())
    return final


def _teacher_metrics(teacher, data, student_preds) -> dict[str, float | None]:
    """The (combined) teacher's test top-1 and its top-1 agreement with the student."""
    if teacher is None:
        return {"teacher_test_acc": None, "teacher_agreement": None}
    t_preds = predict(teacher, data.test)
    return {"teacher_test_acc": float(accuracy(t_preds, data.test)),
            "teacher_agreement": float((t_preds == student_preds).float().mean())}
