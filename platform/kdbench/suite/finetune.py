"""`finetune:` — the downstream stage of a suite: every trained model fine-tuned on each task with a fresh head.

    finetune:
      recipe: {epochs: 3, batch_size: 32, optimizer: {name: adamw, lr: 5.0e-5}}
      seeds: [0, 1]                # default: the suite's seeds
      models: [bert-4, bert-2]     # teachers and students by name; default: every one fine-tuning can start from
      tasks:
        - {name: CoLA, metric: mcc, dataset: {name: text_classification, root: …, file: train.tsv, …}}

Expansion (`finetune_entries`, linear in the plan): for every trained job of a listed model — its teacher job,
each baseline and each distilled student, every seed and every method — one `finetune` job per task and
fine-tune seed. A fine-tune job depends on the job whose weights it starts from (`Job.start`), so the DAG runs it
as soon as that job succeeded, as it does for a chain's next link; its id covers the upstream's id, the task's
dataset and the recipe. Its names in the plan are the upstream's (teacher, student, chain), and its rows say the
task (`finetune_task`), the metric of the task's score (`finetune_metric`) and the upstream (`finetune_from`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.jobs import Component, Job, Recipe, Upstream
from kdbench.registry import suggest
from kdbench.tasks import task_of
from kdbench.zoo.datasets import DATASETS
from kdbench.zoo.models.hf import FINETUNE_FROM

from .plugins import component_code

FINETUNE_TASK = "sequence_classification"
TRAINED_KINDS = ("teacher", "pretrained", "baseline", "student")


@dataclass(frozen=True)
class FinetuneTask:
    name: str
    dataset: Component
    metric: tuple[str, ...]  # the task's score: this metric, or the mean of these (GLUE's MRPC, QQP: f1 and acc)


@dataclass(frozen=True)
class FinetuneDef:
    recipe: Recipe
    tasks: tuple[FinetuneTask, ...]
    seeds: tuple[int, ...]
    models: tuple[str, ...]  # names of the teachers and students fine-tuned


def load_finetune(check, raw, teachers, students) -> FinetuneDef | None:
    """A validated `finetune:` (None without one); every problem a SpecError at its line."""
    f = raw.finetune
    if f is None:
        return None
    tasks, seen = [], {}
    for i, t in enumerate(f.tasks):
        loc = ("finetune", "tasks", i)
        if t.name in seen:
            raise check.fail(loc + ("name",), f"task '{t.name}' is listed twice (first as task {seen[t.name]})")
        seen[t.name] = i
        name = t.dataset.name
        check.name_in(DATASETS, name, loc + ("dataset", "name"))
        task = task_of(name)
        if task.name != FINETUNE_TASK:
            raise check.fail(loc + ("dataset", "name"), f"fine-tuning needs a {FINETUNE_TASK} dataset; '{name}' is "
                                                        f"{task.name}")
        params = check.params(DATASETS.get(name).params, dict(t.dataset.model_extra), loc + ("dataset",), ["name"])
        metrics = [t.metric] if isinstance(t.metric, str) else list(t.metric or [task.primary])
        known = [m.name for m in task.metrics]
        for j, m in enumerate(metrics):
            if m not in known:
                where = loc + ("metric",) + ((j,) if isinstance(t.metric, list) else ())
                raise check.fail(where, f"the {task.name} task has no metric '{m}'{suggest(m, known)}; "
                                        f"known: {', '.join(known)}")
        tasks.append(FinetuneTask(t.name, Component(name, params, component_code("dataset", name)), tuple(metrics)))
    seeds = tuple(f.seeds) if f.seeds is not None else tuple(raw.seeds)
    for j, s in enumerate(seeds):
        if s in seeds[:j]:
            raise check.fail(("finetune", "seeds", j), f"seed {s} is listed twice")
    models = {m.name: m for m in (*teachers, *students)}
    if f.models is None:
        names = tuple(n for n, m in models.items() if m.model.name in FINETUNE_FROM)
        if not names:
            raise check.fail(("finetune",), f"no model to fine-tune: fine-tuning starts from "
                                            f"{', '.join(FINETUNE_FROM)} models")
    else:
        names = tuple(f.models)
        for j, n in enumerate(names):
            loc = ("finetune", "models", j)
            if n not in models:
                raise check.fail(loc, f"'{n}' is not a teacher or student{suggest(n, sorted(models))}")
            if models[n].model.name not in FINETUNE_FROM:
                raise check.fail(loc, f"'{n}' is a {models[n].model.name}; fine-tuning starts from "
                                      f"{', '.join(FINETUNE_FROM)}")
            if n in names[:j]:
                raise check.fail(loc, f"'{n}' is listed twice")
    return FinetuneDef(f.recipe, tuple(tasks), seeds, names)


def finetune_jobs(upstream_jobs: int, f: FinetuneDef | None) -> int:
    """An upper bound of the fine-tune jobs over `upstream_jobs` trained jobs (the plan-size check)."""
    return 0 if f is None else upstream_jobs * len(f.tasks) * len(f.seeds)


def finetune_entries(f: FinetuneDef, entries, make_entry) -> list:
    """One fine-tune entry per (trained job of a listed model, task, seed); `make_entry(job, upstream entry, task)`
    builds the plan entry."""
    wanted = set(f.models)
    out = []
    for e in entries:
        if e.job.kind not in TRAINED_KINDS or e.student not in wanted:
            continue
        start = Upstream(e.job_id, e.job.model)
        for task in f.tasks:
            for seed in f.seeds:
                job = Job("finetune", task.dataset, e.job.model, f.recipe, Component("none", {}), seed, start=start)
                out.append(make_entry(job, e, task))
    return out
