"""A plan's compute, estimated before anything runs: FLOPs from one counted forward per architecture (its cached
profile, kdbench/zoo/models/profile.py, measured once for load, prune and this estimate).

    job FLOPs ≈ epochs × training samples × (3 × student forward + Σ teacher forwards)

(a student reading teacher outputs runs no teacher; a teacher-output job is views × samples × teacher forward)

(backward ≈ 2 × forward; teachers run forward only). GPU-hours divide by an *effective* throughput:
small CIFAR models use a fraction of a GPU's peak, so the default (25 TFLOP/s) is a planning figure,
not a promise; pass your own. Input pipelines, evaluation and the methods' own heads are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.jobs import Component, canonical_json
from kdbench.teachers.cache import cache_bytes
from kdbench.zoo.datasets import DATASETS

from .plan import Plan


@dataclass(frozen=True)
class Estimate:
    flops: float
    gpu_hours: float
    tflops: float


def _flops(model: Component, shape: tuple[int, ...], classes: int) -> float:
    from kdbench.zoo.models.cost import forward_flops

    return forward_flops(model.name, canonical_json(model.params), shape, classes)


def estimate(plan: Plan, tflops: float = 25.0) -> Estimate | None:
    """None when the dataset cannot describe itself without loading its data."""
    dataset = plan.suite.dataset
    described = DATASETS.get(dataset.name).params(**dataset.params).describe()
    if described is None:
        return None
    shape, classes, n_train = described
    total = 0.0
    for e in plan.entries:
        job = e.job
        if job.kind == "teacher_outputs":
            total += job.recipe.epochs * n_train * _flops(job.model, shape, classes)
            continue
        teachers = () if job.outputs else job.teachers
        per_sample = 3 * _flops(job.model, shape, classes) + sum(_flops(t.model, shape, classes) for t in teachers)
        total += job.epochs * n_train * per_sample
    return Estimate(total, total / (tflops * 1e12) / 3600, tflops)


def cache_size(plan: Plan) -> tuple[int, int | None]:
    """(teacher-output jobs, bytes of their training views), by the formula in kdbench/suite/outputs.py;
    bytes None when the dataset cannot describe itself without loading its data."""
    jobs = [e.job for e in plan.entries if e.job.kind == "teacher_outputs"]
    described = DATASETS.get(plan.suite.dataset.name).params(**plan.suite.dataset.params).describe()
    if not jobs or described is None:
        return len(jobs), None
    _, classes, n_train = described
    return len(jobs), sum(cache_bytes(n_train, j.recipe.epochs, classes, j.method.params["topk"],
                                      j.method.params["dtype"], j.method.params.get("tail", "uniform"))
                          for j in jobs)
