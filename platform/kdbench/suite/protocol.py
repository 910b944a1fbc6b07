"""A suite's evaluation protocol, and a paper's per-pair hyperparameters.

- `protocol: validation` (the default): a validation split is held out of the official training set, and the
  recipe's `select` decides which epoch's weights are the result. The honest protocol: nothing is chosen on
  the test set.
- `protocol: paper`: what the CIFAR/ImageNet KD papers ran (RepDistiller, mdistiller) — the whole official
  training set (the dataset's `val_size` is 0: no validation split) and the last epoch's weights (`select:
  last`). A dataset without a `val_size` parameter has no split to give back and is refused, as is a recipe
  that asks for `select: best_val` (there is nothing to select on) and a `search` (it selects on validation).

`pair_params:` sets a method's hyperparameters for one [teacher, student] pair, e.g. mdistiller's DKD β per
pair: `- {pair: [resnet56, resnet20], method: dkd, params: {beta: 2.0}}`. Those jobs run with the method's
hyperparameters updated by these (validated like any), every other pair with the suite's.

Which protocol a job ran under follows from the job itself (`protocol_of`): results rows and leaderboards
label it.
"""

from __future__ import annotations

from typing import Any

from kdbench.jobs import Component, Job, Recipe
from kdbench.methods import METHODS
from kdbench.registry import suggest
from kdbench.zoo.datasets import DATASETS

PAPER, VALIDATION = "paper", "validation"


def protocol_of(job: Job) -> str:
    """`paper` for a job trained on the whole training set with its last epoch kept; else `validation`."""
    if job.recipe is not None and job.recipe.select == "last" and job.dataset.params.get("val_size") == 0:
        return PAPER
    return VALIDATION


def paper_dataset(check, dataset: Component) -> Component:
    """The dataset with no validation split (`val_size: 0`), for `protocol: paper`."""
    fields = DATASETS.get(dataset.name).params.model_fields
    if "val_size" not in fields:
        raise check.fail(("protocol",), f"dataset {dataset.name} has no `val_size` to set to 0: the paper "
                                        "protocol trains on the whole training set")
    params = check.params(DATASETS.get(dataset.name).params, {**dataset.params, "val_size": 0}, ("dataset",))
    return Component(dataset.name, params, dataset.code)


def paper_recipe(check, recipe: Recipe, given: Any, loc: tuple) -> Recipe:
    """`select: last` under `protocol: paper`; an explicit `select: best_val` is refused (no split to select on)."""
    if isinstance(given, dict) and given.get("select") == "best_val":
        raise check.fail(loc + ("select",), "protocol paper keeps the last epoch (no validation split to select "
                                            "on): remove `select: best_val` or use protocol validation")
    return recipe.model_copy(update={"select": "last"})


def pair_params(check, raw, methods: tuple[Component, ...], sources: list[str], students: list[str],
                pairs) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(teacher, student, method) -> the method's full hyperparameters for that pair (`pair_params:`)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    listed = {m.name: m for m in methods}
    for i, entry in enumerate(raw.pair_params):
        loc = ("pair_params", i)
        teacher, student = entry.pair
        if teacher not in sources:
            raise check.fail(loc + ("pair", 0), f"'{teacher}' is not a teacher or ensemble{suggest(teacher, sources)}")
        if student not in students:
            raise check.fail(loc + ("pair", 1), f"'{student}' is not a student{suggest(student, students)}")
        if pairs is not None and (teacher, student) not in pairs:
            raise check.fail(loc + ("pair",), f"[{teacher}, {student}] is not one of the suite's `pairs`")
        if entry.method not in listed:
            raise check.fail(loc + ("method",), f"method '{entry.method}' is not in the suite's `methods`")
        same = [m for m in methods if m.name == entry.method]
        if len(same) > 1:
            raise check.fail(loc + ("method",), f"method '{entry.method}' is listed with several settings: "
                                                "per-pair hyperparameters would be ambiguous")
        key = (teacher, student, entry.method)
        if key in out:
            raise check.fail(loc, f"{entry.method} on [{teacher}, {student}] is given twice")
        out[key] = check.params(METHODS.get(entry.method).Params, {**same[0].params, **entry.params},
                                loc + ("params",))
    return out
