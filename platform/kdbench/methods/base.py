"""The method contract: what a distillation method declares, owns and computes.

A method is an nn.Module (so its own trainable parts — heads, connectors, memory banks — are
optimised with the student and saved in its checkpoints). It declares what it needs from the
teacher in `needs`, its hyperparameters (defaults from its paper) in `Params`, and returns named
loss terms; the engine sums them and never asks which method it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from kdbench.outputs import TeacherOutput
from kdbench.registry import Registry
from kdbench.tasks import Task
from kdbench.tasks.classification import Classification
from kdbench.zoo.models.base import ModelOutput


class MethodParams(BaseModel):
    """Base of every method's hyperparameters: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no .inf or .nan


@dataclass(frozen=True)
class Needs:
    teacher: bool = True  # False: trained on labels alone (the baseline)
    features: tuple[str, ...] = ()  # teacher/student feature taps the loss reads
    indices: bool = False  # sample indices of the batch (e.g. CRD's memory bank)


@dataclass(frozen=True)
class MethodContext:
    """Facts a method may size its own modules from, known before training starts."""

    num_classes: int
    num_train: int
    # Feature-tap shapes without the batch dimension, in the models' tap order (see zoo/models/base.py).
    student_features: dict[str, tuple[int, ...]] = field(default_factory=dict)
    teacher_features: dict[str, tuple[int, ...]] = field(default_factory=dict)
    train_labels: torch.Tensor | None = None  # (num_train,) on the CPU, e.g. for CRD's negative sampling
    epochs: int = 1  # epochs of the main stage
    task: Task = field(default_factory=Classification)  # the dataset's task: its supervised loss (`task.loss`)


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor  # (B, *input_shape)
    y: torch.Tensor  # (B,)
    index: torch.Tensor  # (B,) positions in the training split


@dataclass(frozen=True)
class TrainState:
    epoch: int  # 0-based epoch being trained, counted within its stage
    epochs: int  # epochs of that stage
    stage: Literal["init", "main"] = "main"  # "init": the method's initialisation stage (init_epochs)


class Method(nn.Module):
    name: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams
    needs: ClassVar[Needs] = Needs()

    def __init__(self, params: MethodParams, ctx: MethodContext) -> None:
        super().__init__()
        self.params = params
        self.ctx = ctx

    @property
    def init_epochs(self) -> int:
        """Epochs of an initialisation stage run before the recipe's epochs (AB, FSP, FT's paraphraser):
        the engine calls `forward` with `state.stage == "init"` for them. 0: no such stage."""
        return 0

    def forward(self, batch: Batch, student: ModelOutput, teacher: TeacherOutput | None,
                state: TrainState) -> dict[str, torch.Tensor]:
        """Named, already weighted loss terms; the training loss is their sum."""
        raise NotImplementedError


METHODS: Registry[type[Method]] = Registry("method")


def register_method(cls: type[Method]) -> type[Method]:
    return METHODS.register(cls.name)(cls)


def create_method(name: str, params: dict, ctx: MethodContext) -> Method:
    cls = METHODS.get(name)
    return cls(cls.Params(**params), ctx)
