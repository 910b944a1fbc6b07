"""The training recipe of a job: frozen, typed, every default filled in once (here).

Code reads `job.recipe.precision`, never `recipe.get("precision", "fp32")`. Fields added after job ids were
first computed are left out of a job's identity while they hold their default: see kdbench/jobs/identity.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Sane ranges (kdbench/suite/limits.py documents them); kept here as literals: jobs/ sits below suite/.
MAX_EPOCHS = 100_000


class Optimizer(Strict):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(default=0.05, gt=0, le=1000)
    momentum: float = Field(default=0.9, ge=0, lt=1)  # sgd only
    weight_decay: float = Field(default=5e-4, ge=0, le=1)
    nesterov: bool = False


class Schedule(Strict):
    """Learning-rate schedule over epochs: constant, cosine (to 0) or step (×gamma at milestones)."""

    name: Literal["constant", "cosine", "step"] = "cosine"
    milestones: tuple[int, ...] = Field(default=(), max_length=1000)
    gamma: float = Field(default=0.1, gt=0, le=1)
    warmup_epochs: int = Field(default=0, ge=0, le=MAX_EPOCHS)


class Recipe(Strict):
    epochs: int = Field(gt=0, le=MAX_EPOCHS)
    batch_size: int = Field(default=64, gt=0, le=1 << 20)
    optimizer: Optimizer = Optimizer()
    schedule: Schedule = Schedule()
    select: Literal["best_val", "last"] = "best_val"  # which epoch's weights are the job's result
    # Mixed precision of the training step (torch.autocast): bf16 on CPU or GPU; fp16 on CUDA only, with
    # loss scaling. Evaluation stays fp32.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False  # NHWC memory format for image models and batches (tensor-core convolutions)
    # false: this model's jobs train without the dataset's augmentation (e.g. Hinton et al.'s MNIST teacher is
    # trained with 2-pixel jitter, the students without); a teacher-output cache then holds plain views.
    augment: bool = True

    @model_validator(mode="after")
    def _within_epochs(self):
        if any(not 0 < m < self.epochs for m in self.schedule.milestones):
            raise ValueError(f"schedule.milestones must lie in 1..{self.epochs - 1} (epochs - 1)")
        if self.schedule.warmup_epochs >= self.epochs:
            raise ValueError("schedule.warmup_epochs must be < epochs")
        return self
