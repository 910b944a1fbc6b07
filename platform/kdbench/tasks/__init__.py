"""Tasks, registered by name: classification (the default of every dataset), regression, video_pose, the
text tasks masked_lm and sequence_classification, and linear_probe.

    task = task_of("digits")      # the dataset's task, an instance
    task.metric()                 # its primary metric: name, direction, unit
"""

from __future__ import annotations

from . import (  # noqa: F401  (registration side effects)
    classification,
    masked_lm,
    probe,
    regression,
    sequence_classification,
    video_pose,
)
from .base import TASKS, Metric, Task, register_task


def task_of(dataset: str) -> Task:
    """The task of a registered dataset (its parameters' `task`)."""
    from kdbench.zoo.datasets import DATASETS

    return TASKS.get(DATASETS.get(dataset).params.task)()




def metric_named(name: str) -> Metric:
    """A registered task's metric by its name (metric names are unique across tasks)."""
    for task in TASKS.names():
        for metric in TASKS.get(task).metrics:
            if metric.name == name:
                return metric
    raise KeyError(f"no registered task has a metric named {name!r}")


__all__ = ["TASKS", "Metric", "Task", "metric_named", "register_task", "task_of"]
