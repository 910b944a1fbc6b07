"""Tasks, registered by name: classification (the default of every dataset) and regression.

    task = task_of("digits")      # the dataset's task, an instance
    task.metric()                 # its primary metric: name, direction, unit
"""

from __future__ import annotations

from . import classification, regression  # noqa: F401  (registration side effects)
from .base import TASKS, Metric, Task, register_task


def task_of(dataset: str) -> Task:
    """The task of a registered dataset (its parameters' `task`)."""
    from kdbench.zoo.datasets import DATASETS

    return TASKS.get(DATASETS.get(dataset).params.task)()


__all__ = ["TASKS", "Metric", "Task", "register_task", "task_of"]
