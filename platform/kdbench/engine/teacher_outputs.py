"""Running a `teacher_outputs` job: one teacher, forward only, over the views its students will see.

The job's fields say what to compute (see kdbench/teachers/cache.py and kdbench/suite/outputs.py):
`teachers` the one teacher (its result or a snapshot), `teacher_inference` its engine, `method.params`
the cache format (`views`, `topk`, `dtype`, `augmented`), `recipe` {epochs: V views, batch_size} and `seed`.
Views `all`: view v is epoch v of that seed, batch by batch exactly as the student's loop draws them.
Views K: view k is the whole training split in index order, augmented at (seed, epoch k).
A student's recipe `precision`/`channels_last` (in `recipe` when set) apply as in its training loop.
Each view is written as soon as it is computed, so an interrupted job resumes at the first missing view.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch

from kdbench import paths
from kdbench.errors import JobFailed
from kdbench.jobs import Job, JobFinal
from kdbench.outputs import TopK
from kdbench.store import Store
from kdbench.tasks import task_of
from kdbench.teachers.cache import (
    TEST,
    TEST_BATCH,
    cache_bytes,
    outputs_table,
    read_table,
    view_file,
    write_meta,
    write_table,
)
from kdbench.teachers.inference import InferenceSpec, TeacherEngine
from kdbench.teachers.load import load_member
from kdbench.zoo.datasets import Split
from kdbench.zoo.datasets.base import augment_batch

from .data import dataset_on, ordered_batches, shuffled_batches
from .loop import autocast
from .run import environment


def _in_order(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    if hasattr(split, "batches"):  # streamed from shards
        yield from split.batches(batch_size, None)
        return
    for start in range(0, len(split), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(split)), device=split.y.device)
        yield split.x[idx], split.y[idx], idx


def _lumped(p: dict) -> bool:
    return p.get("tail", "uniform") == "lumped"


@torch.no_grad()
def _view(engine: TeacherEngine, job: Job, split: Split, augment,
          view: int) -> tuple[torch.Tensor, torch.Tensor | TopK]:
    """(R,) sample indices and (R, C) logits of one view — or, for the lumped rule, their top-k at T, reduced
    batch by batch (a view of vocabulary-sized logits need never be held whole)."""
    p, batch_size = job.method.params, job.recipe.batch_size
    reduce = (lambda z: TopK.of(z, p["topk"], p["temperature"])) if _lumped(p) else (lambda z: z)
    exact = p["views"] == "all"
    batches = shuffled_batches(split, batch_size, job.seed, view) if exact else _in_order(split, batch_size)
    index, logits = [], []
    for x, y, idx in batches:
        if augment is not None:
            x, _ = augment_batch(augment, x, y, idx, job.seed, view)  # the student's view of x
        if job.recipe.channels_last and x.dim() == 4:  # as the student's loop hands x to its teacher
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, job.recipe.precision):  # as the student's loop runs its live teacher
            logits.append(reduce(engine(x).member_logits[0]))  # (B, C), bf16/fp16 under mixed precision
        index.append(idx)
    if _lumped(p):
        return torch.cat(index), TopK(*(torch.cat([getattr(t, f) for t in logits]) for f in ("logits", "index", "lse")),
                                      p["temperature"])
    return torch.cat(index), torch.cat(logits)


def run_teacher_outputs(job: Job, store: Store, device: torch.device, report=None) -> JobFinal:
    start = time.perf_counter()
    data = dataset_on(job.dataset, device)
    augment = _views_augment(job, data)
    up, p, views = job.teachers[0], job.method.params, job.recipe.epochs
    member = load_member(up, store, data.input_shape, data.num_classes)
    engine = TeacherEngine([member], None, InferenceSpec.of(job.teacher_inference), device)
    positions: tuple[int, ...] = ()  # per sample: () for (B, C) outputs, (L,) for a sequence's tokens
    for v in range(views):
        rel = Store.artifact(job.job_id, view_file(v))
        if store.exists(rel):  # written before an interruption
            continue
        t0 = time.perf_counter()
        index, logits = _view(engine, job, data.train, augment, v)
        positions = tuple(logits.lse.shape[1:]) if isinstance(logits, TopK) else ()
        write_table(store, rel, outputs_table(index, logits, p["topk"], p["dtype"], data.num_classes))
        if report is not None:
            report({"epoch": v + 1, "view_seconds": time.perf_counter() - t0})
    test_logits = _write_test(engine, job, store, data.test)
    if _lumped(p) and not positions:  # resumed after every view was written: read the shape back
        positions = _positions(store, job)
    write_meta(store, job.job_id, _meta(job, data, engine.parameter_count()) | {"positions": list(positions)})
    task = task_of(job.dataset.name)
    metrics = {f"teacher_test_{k}": v for k, v in task.score(test_logits, data.test.y).items()}
    counters = {"views": views, "rows": views * len(data.train),
                "cache_bytes": cache_bytes(len(data.train), views, data.num_classes, p["topk"], p["dtype"],
                                           p.get("tail", "uniform"), max(1, math.prod(positions))),
                **engine.counts()}
    seconds = time.perf_counter() - start
    final = JobFinal(task=task.name, metrics=metrics, teacher_params=engine.parameter_count(), wall_seconds=seconds,
                     device_seconds=seconds, device=str(device), counters=counters, **environment())
    store.write_bytes(paths.artifact(job.job_id, paths.FINAL), final.to_json())
    return final


def _positions(store: Store, job: Job) -> tuple[int, ...]:
    table = read_table(store, Store.artifact(job.job_id, view_file(0)))
    per_row = table.column("lse").type.list_size
    return () if per_row == 1 else (per_row,)


def _views_augment(job: Job, data):
    """The augmentation of the views to compute (None: plain views); fails if the dataset is not as planned."""
    p = job.method.params
    planned = p["augmented"] or not job.recipe.augment  # what the plan saw in the dataset
    if (data.augment is not None) != planned:
        raise JobFailed(f"dataset {job.dataset.name}: the plan expected {'augmented' if planned else 'plain'} "
                        "training views but the loaded dataset differs; declare the dataset's `augment` parameter")
    return data.augment if p["augmented"] else None


def _write_test(engine: TeacherEngine, job: Job, store: Store, test: Split) -> torch.Tensor:
    """(N_test, C) logits, batched as the engine's `predict` batches the test split (fp32, as evaluation)."""
    logits = torch.cat([engine(x).member_logits[0] for x, _ in ordered_batches(test, TEST_BATCH)])
    write_table(store, Store.artifact(job.job_id, TEST), outputs_table(torch.arange(len(test)), logits, None, "fp32"))
    return logits


def _meta(job: Job, data, teacher_params: int) -> dict:
    p = job.method.params
    # Under a mixed-precision recipe a live teacher's logits come out in that dtype: they are stored exactly
    # in fp32 and given back to the student in it.
    logits_dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(job.recipe.precision, "float32")
    return {"teacher": job.teachers[0].ref, "classes": data.num_classes, "n_train": len(data.train),
            "n_test": len(data.test), "views_mode": "all" if p["views"] == "all" else "replay",
            "views": job.recipe.epochs, "seed": job.seed, "batch_size": job.recipe.batch_size,
            "topk": p["topk"], "dtype": p["dtype"], "logits_dtype": logits_dtype, "teacher_params": teacher_params,
            "tail": p.get("tail", "uniform"), "temperature": p.get("temperature")}
