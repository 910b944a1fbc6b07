"""Checks across a suite's parts that bound its size before anything is built or expanded: the dataset's inputs
and every model sized by arithmetic, a method's `stop_epoch` within each student's training, methods whose schedule
does not fit a recipe (warnings), and the plan's job count against the limit."""

from __future__ import annotations

from kdbench.jobs import Component
from kdbench.methods import METHODS
from kdbench.zoo.datasets import DATASETS

from . import guards
from .finetune import FinetuneDef, finetune_jobs
from .limits import MAX_INPUT_VALUES, MAX_MODEL_PARAMS, MAX_SAMPLES, PLAN_LIMIT_ENV, max_jobs
from .schema import SuiteFile


def model_sizes(check, dataset: Component, teachers, students) -> None:
    """The dataset's inputs and every model, sized without allocating anything: an absurd width or input is
    refused here, before `validate` builds the models for its estimate (or a worker for training)."""
    described = DATASETS.get(dataset.name).params(**dataset.params).describe()
    if described is None:
        return
    shape, classes, n_train = described
    if guards.input_values(shape) > MAX_INPUT_VALUES:
        raise check.fail(("dataset",), f"inputs of shape {tuple(shape)} exceed {MAX_INPUT_VALUES:,} values per sample")
    if n_train > MAX_SAMPLES:
        raise check.fail(("dataset",), f"{n_train:,} training samples exceed {MAX_SAMPLES:,}")
    for group, models in (("teachers", teachers), ("students", students)):
        for i, m in enumerate(models):
            n = guards.model_size(m.model.name, m.model.params, tuple(shape), classes)
            if isinstance(n, str):
                raise check.fail((group, i, "arch"), f"cannot build '{m.model.name}' with these parameters: {n}")
            if guards.too_big(n):
                raise check.fail((group, i), f"'{m.name}' has {n:,} parameters, more than {MAX_MODEL_PARAMS:,}")


def method_epochs(check, methods: tuple[Component, ...], students) -> None:
    """A method's `stop_epoch` lies within the training of every student it is applied to."""
    for i, m in enumerate(methods):
        stop = m.params.get("stop_epoch")
        if not isinstance(stop, int):
            continue
        for s in students:
            if stop > s.recipe.epochs:
                raise check.fail(("methods", i, m.name, "stop_epoch"),
                                 f"must be <= recipe.epochs ({s.recipe.epochs}, student '{s.name}')")


def schedule_warnings(check, methods: tuple[Component, ...], students) -> tuple[str, ...]:
    """Methods whose own schedule does not fit a student's recipe (`Method.schedule_warning`), once per method."""
    out = []
    for i, m in enumerate(methods):
        cls = METHODS.get(m.name)
        for epochs in sorted({s.recipe.epochs for s in students}):
            why = cls.schedule_warning(cls.Params(**m.params), epochs)
            if why:
                out.append(str(check.fail(("methods", i, m.name), why)))
                break
    return tuple(out)


def plan_size(check, raw: SuiteFile, teachers, students, n_sources: int, methods, chains, pairs, search,
              finetune: FinetuneDef | None = None) -> None:
    """An upper bound of the plan's job count, by arithmetic, within the limit (KDBENCH_MAX_JOBS). `n_sources`:
    what a student can learn from (teachers, their snapshots, ensembles)."""
    seeds = len(raw.seeds)
    distill = sum(1 for m in methods if METHODS.get(m.name).needs.teacher)
    cells = len(pairs) if pairs is not None else n_sources * len(students)
    links = sum(len(c) - 1 for c in chains)
    searched = len(search.pairs) * (search.trials + seeds) if search else 0
    # teachers, their output jobs (at most one per teacher and student seed), baselines, students, chains, search
    total = (len(teachers) * (1 + seeds) + len(students) * seeds + cells * distill * seeds
             + links * distill * seeds + searched)
    total += finetune_jobs(total, finetune)  # each trained job, fine-tuned per task and seed
    limit = max_jobs()
    if total > limit:
        factors = {("seeds",): seeds, ("students",): len(students), ("teachers",): len(teachers),
                   ("methods",): len(methods)}
        loc = max(factors, key=factors.get)
        raise check.fail(loc, f"the plan would have up to {total:,} jobs, more than the limit of {limit:,} "
                         f"(set {PLAN_LIMIT_ENV} to raise it)")
