"""Does a teacher's `weights:` file fit its architecture? Checked when the suite loads, not when the job runs.

The model is built on the meta device (no memory, whatever its size) for the dataset's input shape and class
count, and the file's names and shapes are read without its data (kdbench/teachers/sources.py `state_shapes`);
a misfit is one line: the missing and unexpected names and the shape mismatches, a few of each. When the dataset
cannot describe itself here (its files are on the cluster), the check is left to the `pretrained` job.
"""

from __future__ import annotations

import torch

from kdbench.jobs import Component
from kdbench.teachers.sources import TeacherMismatch, adapt_state, misfit, state_shapes
from kdbench.zoo.datasets import DATASETS
from kdbench.zoo.models import create_model


def weights_misfit(path: str, model: Component, dataset: Component) -> str | None:
    """None when the checkpoint at `path` loads strictly into `model` (or cannot be checked here); else why not."""
    described = DATASETS.get(dataset.name).params(**dataset.params).describe()
    if described is None:
        return None
    shape, classes, _ = described
    try:
        shapes = state_shapes(path)
    except TeacherMismatch as e:
        return str(e)
    try:
        with torch.device("meta"):
            net = create_model(model.name, model.params, shape, classes)
    except (NotImplementedError, RuntimeError):  # an operation the meta device lacks
        net = create_model(model.name, model.params, shape, classes)
    problem = misfit(net, adapt_state(net, shapes))
    return None if problem is None else f"the weights do not fit architecture '{model.name}': {problem}"
