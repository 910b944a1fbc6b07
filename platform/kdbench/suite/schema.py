"""Pydantic models of a suite file: its structure, types and ranges.

Component parameters (a dataset's, an architecture's, a method's) are validated in a second step
against the registered component (kdbench/suite/load.py), so this file names no component.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kdbench.jobs.recipe import Recipe

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(Strict):
    cpus: float = Field(default=1.0, gt=0)
    gpus: float = Field(default=0.0, ge=0)  # a fraction (e.g. 0.25) packs several jobs per GPU
    # Up to this many ready jobs differing only in seed and teacher share one trial (and its cpus/gpus),
    # trained fused into one vmapped model when the architecture allows (kdbench/orchestrate/groups.py).
    jobs_per_trial: int = Field(default=1, ge=1, le=256)

    @model_validator(mode="after")
    def _whole_gpus_above_one(self):
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise ValueError("gpus above 1 must be a whole number")
        return self


class ModelEntry(BaseModel):
    """`{name, arch, <the architecture's parameters>}`; the parameters are checked by the arch."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(pattern=NAME)
    arch: str
    # Changes to the suite's recipe for this model's jobs, e.g. {optimizer: {lr: 0.01}} for MobileNetV2.
    recipe: dict[str, Any] | None = None


class TeacherEntry(ModelEntry):
    seed: int = 0
    stop_epoch: int | None = Field(default=None, gt=0)  # take the teacher at this epoch (early-stopped)
    # Snapshots of one training run: students of `<name>@<e>` learn from the teacher's weights after epoch e.
    stop_epochs: list[int] = []
    # A weights file for `arch` (a torchvision-compatible file, or your checkpoint: a state dict, {model: …} or
    # {state_dict: …}), relative to the suite: the teacher is taken as is, not trained.
    weights: str | None = None


class EnsembleEntry(Strict):
    name: str = Field(pattern=NAME)
    members: list[str] = Field(min_length=2)
    combine: Literal["arithmetic", "geometric"] = "arithmetic"


class SearchEntry(Strict):
    """A hyperparameter search per cell ([teacher, student] pair): Optuna's sampler through Ray Tune's
    OptunaSearch, ASHA early stopping, chosen on the validation split (kdbench/orchestrate/search.py)."""

    method: str  # a distillation method of the registry
    # hyperparameter -> one distribution: {uniform: [lo, hi]}, {loguniform: [lo, hi]}, {int: [lo, hi]}, {choice: [...]}
    space: dict[str, dict[str, list[Any]]] = Field(min_length=1)
    params: dict[str, Any] = {}  # the method's other hyperparameters, fixed for every trial
    trials: int = Field(default=8, gt=0)  # trial budget per cell
    # A metric of the dataset's task on the validation split, `val_<metric>` (never test: selection is on
    # validation); default: the task's primary one (val_acc for classification, val_rmse for regression).
    metric: str | None = None
    scheduler: Literal["asha", "none"] = "asha"
    grace_epochs: int = Field(default=1, gt=0)  # ASHA stops no trial before this many epochs
    seed: int | None = None  # the trials' training seed and the sampler's (default: the suite's first seed)
    pairs: list[list[str]] | None = None  # cells to search; default: the suite's pairs (or full grid)


class DatasetEntry(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str


class TeacherInference(Strict):
    """How teachers are run for their students (kdbench/teachers/inference.py)."""

    engine: Literal["torch", "deepspeed"] = "torch"
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    tp_size: int = Field(default=1, ge=1)  # DeepSpeed tensor parallelism across a node's GPUs

    @model_validator(mode="after")
    def _tp_needs_deepspeed(self):
        if self.tp_size > 1 and self.engine != "deepspeed":
            raise ValueError("tp_size above 1 needs engine: deepspeed")
        return self


class TeacherCache(Strict):
    """The teacher-output cache (kdbench/teachers/cache.py): teachers run once for all their logit-only students.

    enabled: auto — when every consumer of a teacher is logit-only and the teacher work saved is worth a
    job; true (YAML's `on`) — whenever every consumer is logit-only; false (`off`) — never.
    views: all — each student seed's own views of every epoch (exact: students' results and ids equal
    live ones); K — K views per sample, replayed FKD-style (epoch e uses view e mod K).
    topk: keep the k largest probabilities per sample."""

    enabled: Literal["auto"] | bool = "auto"
    views: Literal["all"] | int = "all"
    topk: int | None = Field(default=None, ge=1)
    dtype: Literal["fp32", "fp16"] = "fp32"
    max_gib: float = Field(default=64.0, gt=0)  # auto: the suite's caches stay within this many GiB

    @field_validator("enabled", mode="before")
    @classmethod
    def _enabled(cls, v):
        if v != "auto" and not isinstance(v, bool):
            raise ValueError(f"must be auto, true (or on) or false (or off) (got {v!r})")
        return v

    @field_validator("views", mode="before")
    @classmethod
    def _views(cls, v):
        if v != "all" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"must be all or a number of views >= 1 (got {v!r})")
        return v


class SuiteFile(Strict):
    name: str = Field(pattern=NAME)
    # Modules that register your own models, datasets or methods, imported before the suite is checked
    # and in every worker: `my_method` (my_method.py beside the suite), a path to a .py file relative to
    # the suite, or an importable module name (e.g. `mypkg.methods`).
    plugins: list[str] = []
    version: int = Field(default=1, ge=1)
    description: str = ""
    dataset: DatasetEntry
    recipe: Recipe
    teachers: list[TeacherEntry] = []
    students: list[ModelEntry] = Field(min_length=1)
    methods: list[Any] = Field(min_length=1)  # `name` or `{name: {hyperparameters}}`; checked in load.py
    chains: list[list[str]] = []
    # [teacher or ensemble, student] pairs to distil; when given, they replace the full teachers × students grid
    pairs: list[list[str]] | None = None
    ensembles: list[EnsembleEntry] = []
    reference: str | None = None  # CSV of published accuracies (teacher, student, method, paper_acc, source)
    search: SearchEntry | None = None  # per-cell hyperparameter search; the selected config runs over `seeds`
    seeds: list[int] = Field(min_length=1)
    resources: Resources = Resources()
    retries: int = Field(default=2, ge=0)  # Ray Tune retries of a job whose worker died or raised
    teacher_inference: TeacherInference = TeacherInference()
    teacher_cache: TeacherCache = TeacherCache()
