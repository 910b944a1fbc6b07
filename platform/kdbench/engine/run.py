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
import logging
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kdbench import checkpoint
from kdbench.errors import CorruptArtifact, JobFailed
from kdbench.jobs import Job
from kdbench.methods import MethodContext, TrainState, create_method
from kdbench.store import Store
from kdbench.teachers.cache import CachedTeacher
from kdbench.teachers.load import MODEL_FILE, load_teacher, snapshot_file
from kdbench.version import __version__
from kdbench.zoo.datasets import DataSplits
from kdbench.zoo.models import count_parameters, create_model
from kdbench.zoo.models.features import feature_shapes

from .data import dataset_on
from .loop import accuracy, predict, train_epoch
from .optim import build_optimizer, build_scheduler

LAST, FINAL, HISTORY = "last.pt", "final.json", "history.json"
log = logging.getLogger("kdbench.engine")
Report = Callable[[dict[str, Any]], None]


@dataclass
class Training:
    """Everything one job trains, and the progress that a checkpoint must restore exactly."""

    model: nn.Module
    method: nn.Module
    teacher: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    epoch: int = 0  # epochs finished
    best: dict = field(default_factory=lambda: {"val_acc": -1.0, "epoch": 0, "model": None})
    history: list[dict] = field(default_factory=list)
    restarts: list[int] = field(default_factory=list)  # epochs at which the job resumed
    scaler: torch.amp.GradScaler | None = None  # loss scaling of fp16 training

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "method": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": torch.get_rng_state(), "cuda_rng": _cuda_rng(), "epoch": self.epoch, "best": self.best,
                "history": json.dumps(self.history), "restarts": list(self.restarts),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], json.loads(state["history"])
        self.restarts = list(state["restarts"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def _cuda_rng() -> list[torch.Tensor]:
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


def run_job(job: Job, store: Store, *, device: str | torch.device = "cpu", report: Report | None = None) -> dict:
    """Train `job` (or finish it, if a checkpoint exists) and return its final metrics."""
    start = time.perf_counter()
    done = read_final(store, job.job_id)
    if done is not None:  # finished earlier, e.g. before an interrupted driver recorded it
        return done
    device = torch.device(device)
    if job.kind == "teacher_outputs":  # a teacher's outputs for its students: inference, not training
        from .teacher_outputs import run_teacher_outputs

        return run_teacher_outputs(job, store, device, report)
    if job.kind == "pretrained":  # a teacher from a weights file: checked, evaluated, kept as model.pt
        from .pretrained import run_pretrained

        return run_pretrained(job, store, device)
    torch.manual_seed(job.seed)
    data = dataset_on(job.dataset, device)
    run = _setup(job, store, data, device)
    state = _last_checkpoint(store, job.job_id)
    if state is not None:
        run.restore(state)
        run.restarts.append(run.epoch)  # resumed after an interruption: record where
    for epoch in range(run.epoch, run.method.init_epochs + (job.stop_epoch or job.recipe["epochs"])):
        metrics = _epoch(job, run, data, epoch)
        _snapshot(job, store, run)
        checkpoint.save(store, Store.artifact(job.job_id, LAST), run.state())
        if report is not None:
            report(metrics)
    final = _finish(job, store, run, data) | {"wall_seconds": time.perf_counter() - start, "device": str(device)}
    store.write_bytes(Store.artifact(job.job_id, HISTORY), json.dumps(run.history).encode())
    store.write_bytes(Store.artifact(job.job_id, FINAL), json.dumps(final).encode())
    return final


def _snapshot(job: Job, store: Store, run: Training) -> None:
    """Keep the weights after a main-stage epoch the job lists in `snapshots` (written before `last.pt`,
    so a resumed job never skips one)."""
    epoch = run.epoch - run.method.init_epochs
    if epoch in job.snapshots:
        checkpoint.save(store, Store.artifact(job.job_id, snapshot_file(epoch)), {"model": run.model.state_dict()})


def read_final(store: Store, job_id: str) -> dict | None:
    """A finished job's final metrics (its `final.json`), None if it has not finished."""
    data = store.read_bytes(Store.artifact(job_id, FINAL))
    try:
        return None if data is None else json.loads(data)
    except ValueError:  # unreadable: the job's checkpoint will finish it again
        log.warning("ignoring the unreadable %s of job %s", FINAL, job_id)
        return None


def _last_checkpoint(store: Store, job_id: str) -> dict | None:
    try:
        return checkpoint.load(store, Store.artifact(job_id, LAST))
    except CorruptArtifact as e:  # never resume from garbage: start the job again
        log.warning("job %s starts from scratch: %s", job_id, e)
        return None


def _setup(job: Job, store: Store, data: DataSplits, device: torch.device) -> Training:
    precision = job.recipe.get("precision", "fp32")
    if precision == "fp16" and device.type != "cuda":
        raise JobFailed(f"recipe precision fp16 needs a CUDA device (this job runs on {device}); use bf16")
    model = create_model(job.model.name, job.model.params, data.input_shape, data.num_classes).to(device)
    if job.recipe.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    teacher = _teacher(job, store, data, device)
    ctx = MethodContext(num_classes=data.num_classes, num_train=len(data.train),
                        student_features=feature_shapes(model, data.input_shape),
                        teacher_features=_teacher_taps(teacher, data.input_shape),
                        train_labels=data.train.y.cpu(), epochs=job.recipe["epochs"])
    method = create_method(job.method.name, job.method.params, ctx).to(device)
    optimizer = build_optimizer([*model.parameters(), *method.parameters()], job.recipe["optimizer"])
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return Training(model, method, teacher, optimizer, build_scheduler(optimizer, job.recipe), scaler=scaler)


def _teacher_taps(teacher, input_shape) -> dict[str, tuple[int, ...]]:
    """A single teacher's tap shapes; an ensemble (or a cache of outputs) has no features to distil."""
    return {} if teacher is None else teacher.tap_shapes


def _teacher(job: Job, store: Store, data: DataSplits, device: torch.device) -> nn.Module | None:
    """The job's teachers: run live by the inference engine, or read from the teacher-output jobs the plan
    gave it (kdbench/teachers/cache.py)."""
    if not job.outputs:
        return load_teacher(job, store, data.input_shape, data.num_classes, device)
    if job.replay is None:  # exact outputs: the student must also draw the random numbers a live run draws
        for up in job.teachers:  # when it builds its teachers (dropout, a method's modules come after)
            create_model(up.model.name, up.model.params, data.input_shape, data.num_classes)
    teacher = CachedTeacher(store, job.outputs, job.combine, data.num_classes, device)
    teacher.check(len(data.train), job.seed, job.recipe["batch_size"], job.recipe["epochs"])
    return teacher


def _stage(run: Training, job: Job, epoch: int) -> TrainState:
    """Epochs [0, init_epochs) are the method's initialisation stage; then the recipe's epochs."""
    init = run.method.init_epochs
    if epoch < init:
        return TrainState(epoch, init, "init")
    return TrainState(epoch - init, job.recipe["epochs"], "main")


def _epoch(job: Job, run: Training, data: DataSplits, epoch: int) -> dict[str, Any]:
    """Train one epoch, validate, keep the best weights; returns the epoch's metrics."""
    t0 = time.perf_counter()
    state = _stage(run, job, epoch)
    metrics = train_epoch(run.model, run.method, run.teacher, data.train, run.optimizer, job.recipe["batch_size"],
                          job.seed, state, _augment(run, data) if job.recipe.get("augment", True) else None, epoch,
                          precision=job.recipe.get("precision", "fp32"),
                          channels_last=job.recipe.get("channels_last", False), scaler=run.scaler)
    metrics["lr"] = run.optimizer.param_groups[0]["lr"]
    val_acc = float(accuracy(predict(run.model, data.val), data.val))
    if state.stage == "main":  # the schedule and the selection cover the recipe's epochs only
        run.scheduler.step()
        if val_acc > run.best["val_acc"]:
            run.best = {"val_acc": val_acc, "epoch": state.epoch + 1, "model": copy.deepcopy(run.model.state_dict())}
    metrics.update(epoch=epoch + 1, stage_epoch=state.epoch + 1, val_acc=val_acc,
                   epoch_seconds=time.perf_counter() - t0)
    run.history.append(metrics)
    run.epoch = epoch + 1
    return metrics


def _augment(run: Training, data: DataSplits):
    """The student's training views: its own, or the views a replaying teacher cache holds (views: K)."""
    return data.augment if run.teacher is None else run.teacher.replayed(data.augment)


def _finish(job: Job, store: Store, run: Training, data: DataSplits) -> dict[str, Any]:
    """Select the result weights, save them for downstream jobs, and measure them once on test."""
    epochs = job.stop_epoch or job.recipe["epochs"]
    select_last = job.recipe["select"] == "last" or job.stop_epoch is not None
    if not select_last and run.best["model"] is not None:
        run.model.load_state_dict(run.best["model"])
    checkpoint.save(store, Store.artifact(job.job_id, MODEL_FILE), {"model": run.model.state_dict()})
    preds = predict(run.model, data.test)
    return {
        "test_acc": float(accuracy(preds, data.test)),
        "val_acc": float(accuracy(predict(run.model, data.val), data.val)),
        "selected_epoch": epochs if select_last else run.best["epoch"],
        "epochs_trained": epochs,
        "student_params": count_parameters(run.model),
        "teacher_params": run.teacher.parameter_count() if run.teacher is not None else None,
        **_teacher_metrics(run.teacher, data, preds),
        **(run.teacher.counts() if run.teacher is not None else {}),  # teacher forward passes
        "final_train_loss": run.history[-1]["train_loss"] if run.history else None,
        "train_seconds": sum(h["epoch_seconds"] for h in run.history),
        "restarts": run.restarts,
        "host": socket.gethostname(),
        "kdbench_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


def _teacher_metrics(teacher, data, student_preds) -> dict[str, float | None]:
    """The (combined) teacher's test top-1 and its top-1 agreement with the student."""
    if teacher is None:
        return {"teacher_test_acc": None, "teacher_agreement": None}
    t_preds = teacher.test_predictions() if isinstance(teacher, CachedTeacher) else predict(teacher, data.test)
    return {"teacher_test_acc": float(accuracy(t_preds, data.test)),
            "teacher_agreement": float((t_preds == student_preds).float().mean())}
