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

from kdbench import checkpoint, paths
from kdbench.errors import CorruptArtifact, JobFailed
from kdbench.jobs import Job, JobFinal
from kdbench.methods import MethodContext, TrainState, create_method
from kdbench.store import Store
from kdbench.tasks import Task, task_of
from kdbench.teachers.cache import CachedTeacher
from kdbench.teachers.load import load_teacher
from kdbench.version import __version__
from kdbench.zoo.datasets import DataSplits
from kdbench.zoo.models import count_parameters, create_model
from kdbench.zoo.models.features import feature_shapes

from .data import dataset_on
from .loop import evaluate, train_epoch
from .optim import build_optimizer, build_scheduler

log = logging.getLogger("kdbench.engine")
Report = Callable[[dict[str, Any]], None]
Runner = Callable[[Job, Store, torch.device, 'Report | None'], JobFinal]


@dataclass
class Training:
    """Everything one job trains, and the progress that a checkpoint must restore exactly."""

    model: nn.Module
    method: nn.Module
    teacher: nn.Module | None
    task: Task
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    epoch: int = 0  # epochs finished
    # The main-stage epoch whose weights validate best on the task's primary metric (`select: best_val`).
    best: dict = field(default_factory=lambda: {"score": None, "epoch": 0, "model": None})
    history: list[dict] = field(default_factory=list)
    restarts: list[int] = field(default_factory=list)  # epochs at which the job resumed
    scaler: torch.amp.GradScaler | None = None  # loss scaling of fp16 training
    counters: dict[str, float] = field(default_factory=dict)  # what building the model reports (fine-tuning)
    # Wall seconds of the earlier attempts (up to each one's last checkpoint) and when this one started: a
    # resumed job's `wall_seconds` is the sum over its attempts, not the last attempt's alone.
    wall_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "method": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": torch.get_rng_state(), "cuda_rng": _cuda_rng(), "epoch": self.epoch, "best": self.best,
                "history": json.dumps(self.history), "restarts": list(self.restarts),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "wall_seconds": self.wall_seconds()}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch, self.best, self.history = state["epoch"], dict(state["best"]), json.loads(state["history"])
        if "val_acc" in self.best:  # a checkpoint from before tasks: its score was the validation accuracy
            score = self.best.pop("val_acc")
            self.best["score"] = None if score < 0 else score
        self.restarts = list(state["restarts"])
        self.wall_before = float(state.get("wall_seconds") or 0.0)  # absent in checkpoints written before
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


    def keep_if_best(self, val: dict[str, float], epoch: int) -> None:
        """Keep this epoch's weights if they validate better than every earlier epoch's (ties: the earlier)."""
        metric = self.task.metric()
        if metric.better(val[metric.name], self.best["score"]):
            self.best = {"score": val[metric.name], "epoch": epoch, "model": copy.deepcopy(self.model.state_dict())}


def _cuda_rng() -> list[torch.Tensor]:
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


def run_job(job: Job, store: Store, *, device: str | torch.device = "cpu", report: Report | None = None) -> JobFinal:
    """Run `job` (or finish it, if a checkpoint exists) with the runner of its kind; its final report."""
    done = read_final(store, job.job_id)
    if done is not None:  # finished earlier, e.g. before an interrupted driver recorded it
        return done
    return runner(job.kind)(job, store, torch.device(device), report)


def runner(kind: str) -> Runner:
    """The one place that maps a job's kind to the function that runs it."""
    from .pretrained import run_pretrained
    from .teacher_outputs import run_teacher_outputs

    runners: dict[str, Runner] = {"teacher": train, "baseline": train, "student": train, "finetune": train,
                                  "teacher_outputs": run_teacher_outputs,  # inference for its students
                                  "pretrained": run_pretrained}  # a weights file: checked, evaluated, kept
    return runners[kind]


def train(job: Job, store: Store, device: torch.device, report: Report | None = None) -> JobFinal:
    """Train a teacher, a baseline or a student from its last checkpoint (if any) to its last epoch."""
    start = time.perf_counter()
    torch.manual_seed(job.seed)
    data = dataset_on(job.dataset, device)
    run = _setup(job, store, data, device)
    run.started = start  # this attempt's loading counts too
    state = _last_checkpoint(store, job.job_id)
    if state is not None:
        run.restore(state)
        run.restarts.append(run.epoch)  # resumed after an interruption: record where
    for epoch in range(run.epoch, run.method.init_epochs + job.epochs):
        metrics = _epoch(job, run, data, epoch)
        _snapshot(job, store, run)
        checkpoint.save(store, paths.artifact(job.job_id, paths.LAST), run.state())
        if report is not None:
            report(metrics)
    final = _finish(job, store, run, data, wall_seconds=run.wall_seconds(), device=str(device))
    store.write_bytes(paths.artifact(job.job_id, paths.HISTORY), json.dumps(run.history).encode())
    store.write_bytes(paths.artifact(job.job_id, paths.FINAL), final.to_json())
    return final


def _snapshot(job: Job, store: Store, run: Training) -> None:
    """Keep the weights after a main-stage epoch the job lists in `snapshots` (written before `last.pt`,
    so a resumed job never skips one)."""
    epoch = run.epoch - run.method.init_epochs
    if epoch in job.snapshots:
        rel = paths.artifact(job.job_id, paths.snapshot_file(epoch))
        checkpoint.save(store, rel, {"model": run.model.state_dict()})


def read_final(store: Store, job_id: str) -> JobFinal | None:
    """A finished job's final report (its `final.json`), None if it has not finished."""
    data = store.read_bytes(paths.artifact(job_id, paths.FINAL))
    try:
        return None if data is None else JobFinal.from_json(data)
    except (ValueError, TypeError):  # unreadable: the job's checkpoint will finish it again
        log.warning("ignoring the unreadable %s of job %s", paths.FINAL, job_id)
        return None


def _last_checkpoint(store: Store, job_id: str) -> dict | None:
    try:
        return checkpoint.load(store, paths.artifact(job_id, paths.LAST))
    except CorruptArtifact as e:  # never resume from garbage: start the job again
        log.warning("job %s starts from scratch: %s", job_id, e)
        return None


def _setup(job: Job, store: Store, data: DataSplits, device: torch.device) -> Training:
    precision = job.recipe.precision
    if precision == "fp16" and device.type != "cuda":
        raise JobFailed(f"recipe precision fp16 needs a CUDA device (this job runs on {device}); use bf16")
    task = task_of(job.dataset.name)
    model, counters = _initial_model(job, store, data)
    model = model.to(device)
    if job.recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher = _teacher(job, store, data, device)
    ctx = MethodContext(num_classes=data.num_classes, num_train=len(data.train),
                        student_features=feature_shapes(model, data.input_shape),
                        teacher_features=_teacher_taps(teacher, data.input_shape),
                        train_labels=data.train.y.cpu(), epochs=job.recipe.epochs, task=task,
                        student=model, teacher=_single_network(teacher))  # the networks (Needs.weights)
    method = create_method(job.method.name, job.method.params, ctx).to(device)
    # The method's one-time initialisation hook (default: none); a cached teacher has no modules to read.
    method.initialise(model, list(getattr(teacher, "members", [])))
    optimizer = build_optimizer([*model.parameters(), *method.parameters()], job.recipe.optimizer)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return Training(model, method, teacher, task, optimizer, build_scheduler(optimizer, job.recipe), scaler=scaler,
                    counters=counters)


def _initial_model(job: Job, store: Store, data: DataSplits) -> tuple[nn.Module, dict[str, float]]:
    """A new model of the job's architecture; for a fine-tune job, its upstream's encoder with a fresh head."""
    if job.start is not None:
        from .finetune import start_model

        return start_model(job, store, data.input_shape, data.num_classes)
    return create_model(job.model.name, job.model.params, data.input_shape, data.num_classes), {}


def _teacher_taps(teacher, input_shape) -> dict[str, tuple[int, ...]]:
    """A single teacher's tap shapes; an ensemble (or a cache of outputs) has no features to distil."""
    return {} if teacher is None else teacher.tap_shapes


def _single_network(teacher) -> nn.Module | None:
    """A single live teacher's network (frozen); None for an ensemble, a cache of outputs or no teacher."""
    members = getattr(teacher, "members", None)
    return members[0] if members is not None and len(members) == 1 else None


def sparsity_counters(model: nn.Module, teacher_params: int | None) -> dict[str, float]:
    """What a model that reports its sparsity (`sparsity_report()`, e.g. a sparse variational dropout model)
    says about its deployed weights, with `compression` = teacher parameters / its non-zero parameters; {} for
    a model that does not report it."""
    report = getattr(model, "sparsity_report", None)
    if not callable(report):
        return {}
    out = dict(report())
    if teacher_params and out.get("nonzero_params"):
        out["compression"] = teacher_params / out["nonzero_params"]
    return out


def _teacher(job: Job, store: Store, data: DataSplits, device: torch.device) -> nn.Module | None:
    """The job's teachers: run live by the inference engine, or read from the teacher-output jobs the plan
    gave it (kdbench/teachers/cache.py)."""
    if not job.outputs:
        return load_teacher(job, store, data.input_shape, data.num_classes, device)
    if job.replay is None:  # exact outputs: the student must also draw the random numbers a live run draws
        for up in job.teachers:  # when it builds its teachers (dropout, a method's modules come after)
            create_model(up.model.name, up.model.params, data.input_shape, data.num_classes)
    teacher = CachedTeacher(store, job.outputs, job.combine, data.num_classes, device)
    teacher.check(len(data.train), job.seed, job.recipe.batch_size, job.recipe.epochs)
    return teacher


def _stage(run: Training, job: Job, epoch: int) -> TrainState:
    """Epochs [0, init_epochs) are the method's initialisation stage; then the recipe's epochs."""
    init = run.method.init_epochs
    if epoch < init:
        return TrainState(epoch, init, "init")
    return TrainState(epoch - init, job.recipe.epochs, "main")


def _epoch(job: Job, run: Training, data: DataSplits, epoch: int) -> dict[str, Any]:
    """Train one epoch, validate, keep the best weights; returns the epoch's metrics."""
    t0 = time.perf_counter()
    state = _stage(run, job, epoch)
    r = job.recipe
    metrics = train_epoch(run.model, run.method, run.teacher, run.task, data.train, run.optimizer, r.batch_size,
                          job.seed, state, _augment(run, data) if r.augment else None, epoch,
                          precision=r.precision, channels_last=r.channels_last, scaler=run.scaler)
    metrics["lr"] = run.optimizer.param_groups[0]["lr"]
    val = _validate(run, data)
    if state.stage == "main":  # the schedule and the selection cover the recipe's epochs only
        run.scheduler.step()
        if val:
            run.keep_if_best(val, state.epoch + 1)
    metrics.update(epoch=epoch + 1, stage_epoch=state.epoch + 1, epoch_seconds=time.perf_counter() - t0,
                   **{f"val_{k}": v for k, v in val.items()})
    run.history.append(metrics)
    run.epoch = epoch + 1
    return metrics


def _validate(run: Training, data: DataSplits) -> dict[str, float]:
    """The task's metrics on the validation split; none without one (`protocol: paper` trains on the whole
    training set and keeps the last epoch, which validation ensures)."""
    return evaluate(run.task, run.model, data.val, run.task.fit_split(data))[1] if len(data.val) else {}


def _augment(run: Training, data: DataSplits):
    """The student's training views: its own, or the views a replaying teacher cache holds (views: K)."""
    return data.augment if run.teacher is None else run.teacher.replayed(data.augment)


def _finish(job: Job, store: Store, run: Training, data: DataSplits, **extra) -> JobFinal:
    """Select the result weights, save them for downstream jobs, and measure them once on test."""
    select_last = job.recipe.select == "last" or job.stop_epoch is not None
    if not select_last and run.best["model"] is not None:
        run.model.load_state_dict(run.best["model"])
    checkpoint.save(store, paths.artifact(job.job_id, paths.MODEL), {"model": run.model.state_dict()})
    fit_on = run.task.fit_split(data)  # a read-out's labelled split (a linear probe's), None for most tasks
    preds, test = evaluate(run.task, run.model, data.test, fit_on)
    val = _validate(run, data)
    metrics = {f"test_{k}": v for k, v in test.items()} | {f"val_{k}": v for k, v in val.items()}
    agreement = None
    t_params = run.teacher.parameter_count() if run.teacher is not None else None
    if run.teacher is not None:
        if isinstance(run.teacher, CachedTeacher):  # the planner caches outputs only for tasks without a read-out
            t_preds = run.teacher.test_outputs()
            t_test = run.task.score(t_preds, data.test.y)
        else:
            t_preds, t_test = evaluate(run.task, run.teacher, data.test, fit_on)
        metrics |= {f"teacher_test_{k}": v for k, v in t_test.items()}
        agreement = None if preds is None or t_preds is None else run.task.agreement(preds, t_preds)
    return JobFinal(
        task=run.task.name, metrics=metrics,
        selected_epoch=job.epochs if select_last else run.best["epoch"], epochs_trained=job.epochs,
        student_params=count_parameters(run.model),
        teacher_params=t_params,
        teacher_agreement=agreement,
        final_train_loss=run.history[-1]["train_loss"] if run.history else None,
        device_seconds=sum(h["epoch_seconds"] for h in run.history), restarts=run.restarts,
        # teacher forward passes; the sparsity of a model that reports it
        counters=(run.teacher.counts() if run.teacher is not None else {}) | sparsity_counters(run.model, t_params)
        | run.counters,
        **environment(), **extra)


def environment() -> dict[str, str]:
    """Where a job ran: host and versions, as every JobFinal records them."""
    return {"host": socket.gethostname(), "kdbench_version": __version__, "torch_version": torch.__version__,
            "python_version": platform.python_version()}
