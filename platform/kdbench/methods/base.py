"""The method contract: what a distillation method declares, owns and computes (docs/adding-a-method.md).

A method is an nn.Module (so its own trainable parts — heads, connectors, memory banks — are
optimised with the student and saved in its checkpoints). A contributor learns six things:

1. a registered class (`@register_method`) with a canonical `name`;
2. `Params`: its hyperparameters with the paper's defaults (an initialisation stage is the ordinary
   field `init_epochs`; the docstring's final `Defaults:` line lists the documented defaults);
3. one declaration of what it needs and supports: `needs = Needs(teacher=…, features=…, indices=…)`,
   `tasks` and `fusable`;
4. `__init__(params, ctx)`: sizes its own modules from `MethodContext`, raising `Incompatible` for a
   teacher/student pair it cannot work with (the planner prunes that pair and says why);
5. `forward(batch, student, teacher, state)`: named, already weighted loss terms;
6. the helpers: `taps` (feature taps by role) and `mixing` (r·CE + a·KD).

The engine sums the terms and never asks which method it runs; it refuses a feature method for an
ensemble teacher itself (`create_method`), so methods never check for that.
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


class Incompatible(ValueError):
    """Raised while building a method for a teacher/student pair it cannot work with (e.g. unequal stage
    counts): the planner prunes such a pair before training and reports the message as the reason."""


class MethodParams(BaseModel):
    """Base of every method's hyperparameters: frozen, unknown keys are errors. A method with an
    initialisation stage declares the ordinary field `init_epochs: int` (the engine reads it; 0 or
    absent: no such stage)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no .inf or .nan


@dataclass(frozen=True)
class Needs:
    """What a method reads besides the student's logits and the labels.

    teacher: False for a method trained on labels alone (the baseline).
    features: the feature taps it reads, by role (`"stage"`, `"preact"`, `"stem"`, `"embedding"` or a tap
        name such as `"stage2"`), or True for "some taps"; () / False: logits only. A method that reads
        features needs one teacher's taps: the engine and the planner refuse it for an ensemble.
    indices: the batch's sample indices (e.g. CRD's memory bank).
    weights: the networks themselves (`MethodContext.teacher`, `.student`), e.g. to regularise the student's
        weights against the teacher's: one live teacher, never an ensemble or a cache of its outputs.
    student: a model protocol the student must offer (a method name, e.g. "variational_kl"); a student
        without it is `Incompatible`. None: any student.
    """

    teacher: bool = True
    features: tuple[str, ...] | bool = ()
    indices: bool = False
    weights: bool = False
    student: str | None = None

    @property
    def reads_features(self) -> bool:
        return bool(self.features)


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
    # The networks, for a method whose `Needs.weights` or `Needs.student` asks (None otherwise or where not
    # built): the student being trained (its live parameters) and a single teacher (frozen; None for ensembles).
    student: nn.Module | None = None
    teacher: nn.Module | None = None


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
    tasks: ClassVar[tuple[str, ...]] = ("classification",)  # the tasks it can train; the planner prunes others
    # Can N jobs of it train as one `torch.vmap`-ed model (engine/fused.py)? Only a method without modules
    # or an initialisation stage of its own that reads logits alone can; data-dependent control flow,
    # boolean-mask indexing and `.item()` break under vmap. False: its jobs always train one at a time.
    fusable: ClassVar[bool] = True
    # The Params field holding the temperature T at which the method reads its teacher, for a method that reads
    # the teacher only through `TeacherOutput.kl` (KL(p_T ‖ q_T)): such a method can train from a lumped top-k
    # teacher cache stored at its T (teacher_cache `tail: lumped`, kdbench/teachers/cache.py). None: it cannot.
    kl_temperature: ClassVar[str | None] = None

    def __init__(self, params: MethodParams, ctx: MethodContext) -> None:
        super().__init__()
        self.params = params
        self.ctx = ctx

    @classmethod
    def schedule_warning(cls, params: MethodParams, epochs: int) -> str | None:
        """A warning when the method's own schedule does not fit a recipe of `epochs` epochs (e.g. a warm-up
        as long as the training), shown by `kdbench validate` and `run`; None when it fits."""
        return None

    @property
    def init_epochs(self) -> int:
        """Epochs of the initialisation stage run before the recipe's (AB, FSP, FT): `params.init_epochs`, 0
        when the Params have no such field. The engine calls `forward` with `state.stage == "init"` then."""
        return init_epochs(self.params)

    def initialise(self, student: nn.Module, teachers: list[nn.Module]) -> None:
        """Called once by the engine after the student, its teachers and the method are built, before the
        optimiser (a restored checkpoint then overwrites what it set): e.g. DistilBERT copies teacher layers
        into the student. `teachers`: the live teachers' modules ([] when they come from an output cache).
        Default: nothing."""

    def forward(self, batch: Batch, student: ModelOutput, teacher: TeacherOutput | None,
                state: TrainState) -> dict[str, torch.Tensor]:
        """Named, already weighted loss terms; the training loss is their sum."""
        raise NotImplementedError


METHODS: Registry[type[Method]] = Registry("method")


def register_method(cls: type[Method]) -> type[Method]:
    """Register `cls` under `cls.name`, checking its declarations (a mistake fails at import, not in training)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__}: a method needs a class attribute `name` (the key suites use)")
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, MethodParams)):
        raise TypeError(f"method {name}: Params must subclass MethodParams")
    if not cls.tasks:
        raise TypeError(f"method {name}: `tasks` lists no task")
    if cls.fusable and (cls.needs.features or cls.needs.indices or cls.needs.weights or cls.needs.student
                        or "init_epochs" in cls.Params.model_fields):
        raise TypeError(f"method {name} reads feature taps, sample indices or the networks, or has an "
                        "initialisation stage: it cannot train fused; declare `fusable = False`")
    return METHODS.register(name)(cls)


def init_epochs(params: MethodParams) -> int:
    """The initialisation stage's length in epochs, read from the Params (0 without an `init_epochs` field)."""
    return int(getattr(params, "init_epochs", 0) or 0)


def ensemble_refusal(name: str) -> str:
    return f"{name} reads the teacher's feature taps, which only a single teacher has; an ensemble of teachers has none"


def weights_refusal(name: str) -> str:
    return f"{name} reads the teacher's weights, which only a single teacher has; an ensemble has none"


def create_method(name: str, params: dict, ctx: MethodContext) -> Method:
    """Build a method for a pair; raises `Incompatible` (a ValueError) when it cannot work for it."""
    cls = METHODS.get(name)
    if cls.needs.reads_features and not ctx.teacher_features and cls.needs.teacher:
        raise Incompatible(ensemble_refusal(name))
    if cls.needs.weights and cls.needs.teacher and ctx.teacher is None:
        raise Incompatible(weights_refusal(name))
    if cls.needs.student and not callable(getattr(ctx.student, cls.needs.student, None)):
        raise Incompatible(f"{name} needs a student that offers `{cls.needs.student}()`, which "
                           f"{type(ctx.student).__name__} does not")
    return cls(cls.Params(**params), ctx)
