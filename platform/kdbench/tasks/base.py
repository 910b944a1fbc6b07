"""The task contract: what a batch's targets are, how outputs are scored, which metric ranks a leaderboard.

A task is a registered component beside models, datasets and methods. A dataset declares its task
(`DatasetParams.task`); the engine asks the task for the supervised loss, the training-epoch statistics,
the metrics of a split and the agreement between teacher and student; leaderboards, views, search and the
validation-based selection read the task's *primary* metric with its direction. The engine never asks
which task it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch

from kdbench.outputs import TeacherOutput
from kdbench.registry import Registry
from kdbench.zoo.datasets.base import Split
from kdbench.zoo.models.base import ModelOutput

Fit = tuple[torch.Tensor, torch.Tensor]  # (predictions, targets) of the split a read-out is fitted on


@dataclass(frozen=True)
class Metric:
    """A named metric of a task. Results hold raw values (accuracy as a fraction); people read them scaled."""

    name: str  # e.g. "acc": the results hold test_acc, val_acc
    title: str  # e.g. "accuracy"
    higher_is_better: bool
    unit: str = ""  # e.g. "%": shown as value × scale
    scale: float = 1.0
    low: float | None = None  # the metric's range, for clipping intervals (None: unbounded)
    high: float | None = None

    def better(self, a: float | None, b: float | None) -> bool:
        """Whether `a` is strictly better than `b` (None is worse than any value)."""
        if a is None:
            return False
        return b is None or (a > b if self.higher_is_better else a < b)

    def sort_key(self, value: float | None) -> float:
        """Ascending order puts the best value first, None last."""
        if value is None:
            return float("inf")
        return -value if self.higher_is_better else value


class Task:
    """Base of every task. Subclasses set `name`, `metrics`, `primary` and `loss_term` and implement the
    methods below; every tensor method is safe under `torch.vmap` (fused training)."""

    name: ClassVar[str]
    metrics: ClassVar[tuple[Metric, ...]]
    primary: ClassVar[str]  # the metric leaderboards rank by and validation selects on
    loss_term: ClassVar[str]  # the supervised loss's name among a method's terms ("ce", "mse")
    # Scores a model's feature taps rather than its outputs (a linear probe): a teacher-output cache, which holds
    # logits only, cannot serve its students.
    reads_features: ClassVar[bool] = False
    # Scores a split from per-batch sums (`batch_sums` then `score_sums`), so evaluation streams the split in
    # batches of `eval_batch` samples and never holds its predictions: a masked LM's are N·L·V floats, 15 GB for
    # 1,000 sequences of 128 tokens over BERT's 30,522-token vocabulary.
    streamed: ClassVar[bool] = False
    eval_batch: ClassVar[int] = 1024

    @classmethod
    def metric(cls, name: str | None = None) -> Metric:
        """The metric `name` (default: the primary one)."""
        name = name or cls.primary
        return next(m for m in cls.metrics if m.name == name)

    def prediction(self, out: ModelOutput | TeacherOutput) -> torch.Tensor:
        """(B, K) what the model or (combined) teacher predicts for a batch."""
        raise NotImplementedError

    def loss(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The supervised loss on the targets, mean over the batch."""
        raise NotImplementedError

    def batch_sums(self, prediction: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sums over one training batch (0-dim tensors) that `train_metrics` turns into the epoch's metrics."""
        raise NotImplementedError

    def train_metrics(self, sums: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        """The epoch's training metrics (`train_<name>`) from the summed `batch_sums` over `n` samples."""
        raise NotImplementedError

    def score(self, predictions: torch.Tensor, y: torch.Tensor, fit: Fit | None = None) -> dict[str, float]:
        """Every metric of the task over a whole split, {metric name: value}. `fit`: the predictions and targets
        of the split `fit_split` names, for a task that fits a read-out before scoring (None for the others)."""
        raise NotImplementedError

    def score_sums(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        """A `streamed` task's metrics of a split from its `batch_sums` summed over the split's batches."""
        raise NotImplementedError

    @torch.no_grad()
    def streamed_score(self, model, split: Split) -> dict[str, float]:
        """A `streamed` task's metrics of `model` (a student or a teacher) over `split`, `eval_batch` samples at
        a time: the same values as `score(predict(model, x), y)` without holding the split's predictions."""
        model.eval()
        sums: dict[str, torch.Tensor] = {}
        for xb, yb in split_batches(split, self.eval_batch):
            for k, v in self.batch_sums(self.prediction(model(xb)), yb).items():
                sums[k] = sums.get(k, 0) + v
        return self.score_sums(sums)

    def fit_split(self, data) -> Split | None:
        """The labelled split (of a `DataSplits`) a read-out is fitted on before `score` (a linear probe's
        training split); None: the task scores the model's outputs directly (classification, regression)."""
        return None

    def agreement(self, student: torch.Tensor, teacher: torch.Tensor) -> float | None:
        """How often student and teacher agree on a split (None where the task has no such notion)."""
        return None

    @torch.no_grad()
    def predict(self, model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """(N, K) predictions of `model` (a student or a teacher) over inputs `x`, in eval mode."""
        model.eval()
        return torch.cat([self.prediction(model(xb)) for xb in _chunks(x, batch_size)])

    @torch.no_grad()
    def predict_split(self, model, split: Split, batch_size: int = 1024) -> torch.Tensor:
        """`predict` over a split: an in-memory one's inputs, or a streamed split's batches in index order (shards:
        the split's images are decoded batch by batch, never held)."""
        if not hasattr(split, "batches"):
            return self.predict(model, split.x, batch_size)
        model.eval()
        return torch.cat([self.prediction(model(xb)) for xb, _ in split_batches(split, batch_size)])


def split_batches(split: Split, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) batches of `size` samples in index order: slices of an in-memory split, or a streamed split's own
    batches (zoo/datasets/shard_stream.py, decoded in its workers)."""
    if hasattr(split, "batches"):
        for x, y, _ in split.batches(size, None):
            yield x, y
    else:
        yield from zip(_chunks(split.x, size), _chunks(split.y, size), strict=True)


def _chunks(x: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for start in range(0, x.shape[0], size):
        yield x[start:start + size]


TASKS: Registry[type[Task]] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    return TASKS.register(cls.name)(cls)
