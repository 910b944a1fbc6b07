"""Pruning a plan of the jobs whose method cannot work for their teacher/student pair.

FSP needs equal channel counts, AT the same number of stages… Each method says so by raising
`Incompatible` (a ValueError) when it is built from the pair's feature shapes; a method that reads
feature taps is refused for an ensemble teacher by `create_method` itself, and a method whose `tasks`
do not include the suite's task is pruned without being built. That is checked here for every
student job, once per distinct (method, student, teachers), by building the method on the meta device
from the pair's feature shapes — one cached profile per architecture (kdbench/zoo/models/profile.py, shared
with load_suite and the estimate) — so a suite never schedules a GPU job that is bound to fail, and the user is
told which and why. tests/test_validate_decisions.py holds these decisions equal, for every benchmark suite, to
those of building every model and method anew.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache

import torch

from kdbench.jobs import Component, Job, canonical_json
from kdbench.methods import METHODS, MethodContext, create_method
from kdbench.methods.base import ensemble_refusal, weights_refusal
from kdbench.zoo.datasets import DATASETS
from kdbench.zoo.models import create_model
from kdbench.zoo.models.profile import arch_profile, on_meta

from .plan import Plan, PlanEntry


@dataclass(frozen=True)
class Pruned:
    entry: PlanEntry
    reason: str

    def describe(self) -> str:
        """`method: teacher → student: reason` (equal for every seed of a cell, so lines group)."""
        return f"{self.entry.job.method.name}: {' → '.join(self.entry.chain)}: {self.reason}"


def suite_task(suite) -> str:
    """The task a suite trains: its dataset's (kdbench/tasks/)."""
    return DATASETS.get(suite.dataset.name).params.task


def _task_reason(method: str, task: str) -> str | None:
    tasks = METHODS.get(method).tasks
    return None if task in tasks else f"{method} supports the tasks {', '.join(tasks)}, not {task}"


def _shapes(arch: str, params_json: str, input_shape: tuple[int, ...], classes: int) -> dict:
    """Feature shapes from the architecture's one cached profile (meta device; shared with load and estimate)."""
    return arch_profile(arch, params_json, input_shape, classes).features


@contextmanager
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@cache
def _labels(n_train: int, classes: int) -> torch.Tensor:
    """Balanced stand-in labels (the data is not loaded here), made once per dataset."""
    return torch.arange(n_train, device="cpu") % classes


def _reason(job: Job, shape: tuple[int, ...], classes: int, n_train: int) -> str | None:
    def taps(model: Component) -> dict:
        return _shapes(model.name, canonical_json(model.params), shape, classes)

    teacher = taps(job.teachers[0].model) if len(job.teachers) == 1 else {}
    student = taps(job.model)

    labels = _labels(n_train, classes)

    needs = METHODS.get(job.method.name).needs

    def build() -> None:
        nets = {}
        if needs.weights or needs.student:  # the networks themselves (on the meta device: no memory)
            nets["student"] = create_model(job.model.name, job.model.params, shape, classes)
            if len(job.teachers) == 1:
                nets["teacher"] = create_model(job.teachers[0].model.name, job.teachers[0].model.params, shape,
                                               classes)
        ctx = MethodContext(num_classes=classes, num_train=n_train, student_features=student,
                            teacher_features=teacher, train_labels=labels, epochs=job.recipe.epochs, **nets)
        create_method(job.method.name, job.method.params, ctx)

    try:
        try:  # on the meta device a method's buffers (e.g. CRD's memory of every sample) cost nothing
            with on_meta(), _one_thread():  # CRD sorts the stand-in labels: tiny work, slowed by thread start-up
                build()
        except (NotImplementedError, RuntimeError):  # a method that reads its tensors' values
            build()
    except ValueError as e:
        return str(e)
    return None


def prune_incompatible(plan: Plan) -> tuple[Plan, list[Pruned]]:
    """The plan without incompatible jobs (and the chain links that depend on them), and why each went."""
    described = DATASETS.get(plan.suite.dataset.name).params(**plan.suite.dataset.params).describe()
    task = suite_task(plan.suite)
    verdicts: dict[str, str | None] = {}
    pruned: list[Pruned] = []
    pruned_ids: set[str] = set()  # linear in the plan: no set rebuilt per job
    keep = []
    for e in plan.entries:  # topological order: a pruned upstream is seen first
        gone = next((t.job_id for t in e.job.teachers if t.job_id in pruned_ids), None)
        reason = f"its teacher job {gone} was pruned" if gone else None
        if reason is None and e.job.start is not None and e.job.start.job_id in pruned_ids:
            reason = f"the job it is fine-tuned from, {e.job.start.job_id}, was pruned"
        if reason is None and e.job.kind in ("baseline", "student"):  # the kinds that run a registered method
            reason = _task_reason(e.job.method.name, task)
        if reason is None and e.job.kind == "student":
            needs = METHODS.get(e.job.method.name).needs
            if needs.features and len(e.job.teachers) != 1:
                reason = ensemble_refusal(e.job.method.name)
            elif needs.weights and len(e.job.teachers) != 1:
                reason = weights_refusal(e.job.method.name)
            elif described is not None:  # else the models cannot be sized without loading the data: the job tells
                key = canonical_json([e.job.method.name, e.job.method.params, e.job.model.name, e.job.model.params,
                                      [[t.model.name, t.model.params] for t in e.job.teachers]])
                if key not in verdicts:
                    verdicts[key] = _reason(e.job, *described)
                reason = verdicts[key]
        if reason is None:
            keep.append(e)
        else:
            pruned.append(Pruned(e, reason))
            pruned_ids.add(e.job_id)
    return replace(plan, entries=tuple(keep)), pruned
