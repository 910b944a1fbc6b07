"""In-memory dataset splits and the registry of datasets.

Small datasets live as tensors (on the training device once moved), so a batch is an index
into a tensor, not a Python loop over samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from kdbench.registry import Registry


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # (N, *input_shape), float32; text: (N, L) int64 token ids, [PAD] = 0
    y: torch.Tensor  # the task's targets: (N,) int64 class labels; (N, K) float32 regression targets;
    # masked LM: (N, L) int64 original ids at predicted positions, -100 elsewhere

    def __len__(self) -> int:
        return self.y.shape[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def to(self, device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


# Training-time augmentation of a batch: (x, sample indices, seed, epoch) -> x. A pure function of its
# arguments (draw randomness from a generator seeded by them), so a resumed job, a cached teacher
# output and a live teacher all see exactly the same views.
Augment = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]


def augment_batch(augment: Augment, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, seed: int,
                  epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch's view (x, y). An augmentation that also rewrites the targets (masked LM's masking:
    which tokens are predicted) declares `with_targets = True`, takes y last and returns (x, y); any other
    leaves the targets as they are."""
    if getattr(augment, "with_targets", False):
        return augment(x, idx, seed, epoch, y)
    return augment(x, idx, seed, epoch), y


@dataclass(frozen=True)
class DataSplits:
    train: Split  # or a split streamed from shards (shard_stream.StreamSplit: len, y, input_shape, batches)
    val: Split
    test: Split
    num_classes: int  # the model's output size: classes, or regression targets
    augment: Augment | None = None  # applied to training batches only, on their device
    # A small labelled split on which a task fits a read-out of the trained model (the linear probe of
    # tasks/probe.py); None: such a task fits on `train`. Training never sees it.
    probe: Split | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.input_shape

    def to(self, device) -> DataSplits:
        return DataSplits(self.train.to(device), self.val.to(device), self.test.to(device), self.num_classes,
                          self.augment, None if self.probe is None else self.probe.to(device))


class DatasetParams(BaseModel):
    """Base of every dataset's parameters: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no .inf or .nan
    # The registered task (kdbench/tasks/) whose targets this dataset holds: what its `y` is, how a model's
    # outputs on it are scored.
    task: ClassVar[str] = "classification"

    def describe(self) -> tuple[tuple[int, ...], int, int] | None:
        """(input shape, output size (classes or targets), training samples) without loading the data;
        None when the dataset cannot tell."""
        return None


@dataclass(frozen=True)
class Dataset:
    name: str
    params: type[DatasetParams]
    load: Callable[[DatasetParams], DataSplits]


DATASETS: Registry[Dataset] = Registry("dataset")


def register_dataset(name: str, params: type[DatasetParams]):
    def add(load):
        DATASETS.register(name)(Dataset(name, params, load))
        return load

    return add


# Where a suite is validated or submitted is not always where its jobs run: a laptop without CIFAR submits to a
# cluster whose nodes hold it. Inside `data_checked_later()`, a dataset whose files are missing here is
# accepted and the problem recorded; `kdbench run` checks again where the jobs run, before the first job.
_DEFERRED: ContextVar[list[str] | None] = ContextVar("kdbench_data_deferred", default=None)


@contextmanager
def data_checked_later() -> Iterator[list[str]]:
    """Within it, missing dataset files are recorded in the yielded list instead of refused."""
    notes: list[str] = []
    token = _DEFERRED.set(notes)
    try:
        yield notes
    finally:
        _DEFERRED.reset(token)


def data_missing(message: str) -> None:
    """A dataset's files are not where its parameters say: a ValueError (the suite's error at `dataset.root`),
    or, inside `data_checked_later()`, a recorded note."""
    notes = _DEFERRED.get()
    if notes is None:
        raise ValueError(message)
    notes.append(message)


def data_present() -> bool:
    """False inside `data_checked_later()` once a dataset's files were found missing (describe() then cannot
    count what is not there)."""
    return not _DEFERRED.get()


def load_dataset(name: str, params: dict) -> DataSplits:
    entry = DATASETS.get(name)
    return entry.load(entry.params(**params))
