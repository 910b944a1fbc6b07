"""Teacher-output jobs in a plan: a teacher runs once for all its logit-only students (the suite's `teacher_cache`).

For each teacher (an upstream job, or one of its snapshots) whose consumers in the plan are all logit-only
(`Needs.features == ()`, no `Needs.indices`, no `Needs.weights`), `with_teacher_outputs` adds `teacher_outputs` jobs and
points the students at them (`Job.outputs`); a student reads the cache only when every one of its teachers
has one (an ensemble whose members are all cached). Which jobs (see kdbench/teachers/cache.py):

- views `all`: one per (teacher, seed, batch size, epochs) — the exact views and batches of that seed,
  and the student recipe's `precision` and `channels_last`, which change how a live teacher runs too;
- views K: one per teacher (K replayed views, seed REPLAY_SEED, fp32); without augmentation, K = 1.
- `tail: lumped` (top-k logits at T plus a tail bucket): also one per temperature, T being each student
X

`enabled: auto` adds them only where the teacher forward FLOPs they save reach AUTO_MIN_SAVED_FLOPS (the
cost of a job's start, loading and files on a GPU, with a margin), most FLOPs saved per byte stored first,
while the suite's caches fit in `max_gib`: tiny suites on digits keep their plans, and an exact cache of
240 CIFAR epochs (4.4 GB per teacher and seed) does not fill a disk unasked.
`true` (YAML also reads `on` so) adds them wherever the consumers allow, `false` (`off`) never.
Linear in the plan's jobs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from kdbench.jobs import Component, Job, Recipe, Upstream
from kdbench.methods import METHODS
from kdbench.tasks import task_of
from kdbench.teachers.cache import cache_bytes

REPLAY_SEED = 0  # the seed of the K replayed views
INFERENCE_BATCH = 256  # batch size of the replayed views; enters those jobs' ids through their recipe
AUTO_MIN_SAVED_FLOPS = 1e13
DEFAULT_INFERENCE = {"engine": "torch", "dtype": "fp32", "tp_size": 1}


def inference_identity(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The suite's `teacher_inference` as it enters job ids: None for plain PyTorch fp32 (ids unchanged)."""
    return None if not spec or spec == DEFAULT_INFERENCE else dict(spec)


def dataset_augments(dataset: Component) -> bool:
    """Whether the training views are augmented, known before loading (the dataset's `augment` parameter;
    the teacher-output job checks that the loaded dataset agrees)."""
    return bool(dataset.params.get("augment", False))


def _logit_only(job: Job) -> bool:
    needs = METHODS.get(job.method.name).needs
    return not needs.features and not needs.indices and not needs.weights  # weights: the live teacher network


def _lumped(cache: dict[str, Any]) -> bool:
    return cache.get("tail", "uniform") == "lumped"


def kl_temperature(job: Job) -> float | None:
    """The temperature at which a student's method reads its teacher through `TeacherOutput.kl` alone (its
    declared `kl_temperature` field, defaults filled in); None when it reads the teacher otherwise."""
    cls = METHODS.get(job.method.name)
    if cls.kl_temperature is None:
        return None
    return float(getattr(cls.Params(**job.method.params), cls.kl_temperature))


def _reads(job: Job, cache: dict[str, Any]) -> bool:
    """Whether a consumer can train from the cache: logit-only; for a lumped cache, a single teacher read
    through the KL alone (at the temperature the cache is then stored at)."""
    if not _logit_only(job):
        return False
    return not _lumped(cache) or (len(job.teachers) == 1 and kl_temperature(job) is not None)


def _replay(cache: dict[str, Any], augmented: bool, student: Job) -> dict[str, Any] | None:
    """What a student's id says about the cache it reads; None when it is exact (views all, fp32, no top-k)."""
    views = cache["views"] if cache["views"] == "all" or augmented else 1
    if views == "all" and cache["topk"] is None and cache["dtype"] == "fp32":
        return None
    replay = {"views": views, "topk": cache["topk"], "dtype": cache["dtype"]}
    if _lumped(cache):  # keys present only for this rule: ids of the uniform rule stay as they were
        replay |= {"tail": "lumped", "temperature": kl_temperature(student)}
    return replay


def _outputs_job(suite, up: Upstream, student: Job, cache: dict, augmented: bool) -> Job:
    exact = cache["views"] == "all"
    r = student.recipe
    views = r.epochs if exact else (cache["views"] if augmented else 1)
    recipe = Recipe(epochs=views, batch_size=r.batch_size if exact else INFERENCE_BATCH,
                    # the student's mixed precision and memory format also apply to its live teacher's forward
                    precision=r.precision if exact else "fp32", channels_last=exact and r.channels_last,
                    # views left plain by the recipe, not by the dataset
                    augment=not (dataset_augments(suite.dataset) and not augmented))
    params = {"views": "all" if exact else views, "topk": cache["topk"], "dtype": cache["dtype"],
              "augmented": augmented, "tail": cache.get("tail", "uniform"),
              # lumped: stored at the student's temperature, so it is part of the id (LATER_DEFAULTS drops None)
              "temperature": kl_temperature(student) if _lumped(cache) else None}
    return Job("teacher_outputs", suite.dataset, up.model, recipe, Component("teacher_outputs", params),
               student.seed if exact else REPLAY_SEED, teachers=(up,),
               teacher_inference=inference_identity(suite.teacher_inference))


# Tasks whose outputs are (B, L, V) per token: only the lumped top-k cache holds them (kdbench/teachers/cache.py).
PER_TOKEN_TASKS = ("masked_lm",)


def _cached_refs(suite, entries: list, cache: dict) -> set[str]:
    """Teacher refs whose consumers are all logit-only (and, for `auto`, worth caching within `max_gib`)."""
    consumers: dict[str, list[Job]] = defaultdict(list)
    ups: dict[str, Upstream] = {}
    for e in entries:
        for t in e.job.teachers:
            consumers[t.ref].append(e.job)
            ups[t.ref] = t
    refs = {r for r, jobs in consumers.items() if all(j.kind == "student" and _reads(j, cache) for j in jobs)}
    if task_of(suite.dataset.name).reads_features:  # its read-out needs the teacher's features, which a cache of
        return set()  # logits does not hold (a linear probe)
    if task_of(suite.dataset.name).name in PER_TOKEN_TASKS and not _lumped(cache):
        return set()  # per-token vocabulary outputs are cached as lumped top-k only; other rules keep them live
    if cache["enabled"] is True or not refs:
        return refs
    return _worth_caching(suite, refs, ups, consumers, cache)


def _worth_caching(suite, refs: set[str], ups: dict, consumers: dict, cache: dict) -> set[str]:
    """`auto`: the refs whose cache saves at least AUTO_MIN_SAVED_FLOPS of teacher forwards, most FLOPs saved
    per byte first, while the suite's caches fit in `max_gib`."""
    from kdbench.zoo.datasets import DATASETS

    from .estimate import _flops

    described = DATASETS.get(suite.dataset.name).params(**suite.dataset.params).describe()
    if described is None:  # cannot size it without loading the data: a dataset of files, worth caching
        return refs
    shape, classes, n_train = described
    scored = []
    for r in sorted(refs):
        jobs = consumers[r]
        if cache["views"] == "all":  # one pass per (seed, batch size, epochs, precision) group
            groups = {(j.seed, j.recipe.batch_size, j.recipe.epochs, j.recipe.precision, j.recipe.augment):
                      j.recipe.epochs for j in jobs}
            views = sum(groups.values())
        else:
            views = cache["views"]
        saved = (sum(j.recipe.epochs for j in jobs) - views) * n_train * _flops(ups[r].model, shape, classes)
        size = cache_bytes(n_train, views, classes, cache["topk"], cache["dtype"], cache.get("tail", "uniform"))
        if saved >= AUTO_MIN_SAVED_FLOPS:
            scored.append((-saved / size, r, size))
    chosen, total, budget = set(), 0, cache.get("max_gib", 64) * 2**30
    for _, r, size in sorted(scored):
        if total + size <= budget:
            chosen.add(r)
            total += size
    return chosen


def with_teacher_outputs(suite, entries: list) -> list:
    """`entries` (topological order) with teacher-output jobs added before their first reader."""
    from .plan import PlanEntry

    cache = suite.teacher_cache or {"enabled": "auto", "views": "all", "topk": None, "dtype": "fp32", "tail": "uniform"}
    if cache["enabled"] is False:
        return entries
    cached = _cached_refs(suite, entries, cache)
    if not cached:
        return entries
    dataset_augmented = dataset_augments(suite.dataset)
    names = {e.job_id: e.student for e in entries}

    def augmented(student: Job) -> bool:  # a model's recipe may train it without the dataset's augmentation
        return dataset_augmented and student.recipe.augment

    out, added, remap = [], {}, {}  # remap: ids changed by `replay` (chain links downstream follow)
    for e in entries:
        job = e.job
        teachers = tuple(replace(t, job_id=remap.get(t.job_id, t.job_id)) for t in job.teachers)
        if job.kind == "student" and teachers and all(t.ref in cached for t in job.teachers):
            outputs = []
            for t in teachers:
                o = _outputs_job(suite, t, job, cache, augmented(job))
                if o.job_id not in added:
                    name = names[t.job_id] + (f"@{t.epoch}" if t.epoch is not None else "")
                    added[o.job_id] = PlanEntry(o, None, name, (name,))
                    out.append(added[o.job_id])
                outputs.append(o.job_id)
            job = replace(job, teachers=teachers, outputs=tuple(outputs), replay=_replay(cache, augmented(job), job))
        elif teachers != job.teachers:
            job = replace(job, teachers=teachers)
        if job is not e.job:
            remap[e.job_id] = job.job_id
            names[job.job_id] = e.student
            e = replace(e, job=job)
        out.append(e)
    return out

