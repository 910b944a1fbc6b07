"""Pydantic models of a suite file: its structure, types and ranges.

Component parameters (a dataset's, an architecture's, a method's) are validated in a second step
against the registered component (kdbench/suite/load.py), so this file names no component.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kdbench.jobs.recipe import Recipe

from . import limits as L

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
Name = Annotated[str, Field(pattern=NAME, max_length=L.MAX_NAME_CHARS)]  # becomes file and folder names
Text = Annotated[str, Field(max_length=L.MAX_TEXT_CHARS)]  # names of components, paths, modules
Seed = Annotated[int, Field(ge=0, le=L.MAX_SEED)]  # NumPy and PyTorch take unsigned 32-bit seeds
Epoch = Annotated[int, Field(gt=0, le=L.MAX_EPOCHS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Resources(Strict):
    cpus: float = Field(default=1.0, gt=0, le=L.MAX_CPUS)
    gpus: float = Field(default=0.0, ge=0, le=L.MAX_GPUS)  # a fraction (e.g. 0.25) packs several jobs per GPU
    # Up to this many ready jobs differing only in seed and teacher share one trial (and its cpus/gpus),
    # trained fused into one vmapped model when the architecture allows (kdbench/orchestrate/groups.py); `auto`
    # packs only jobs estimated short against a trial's fixed cost, in packs of bounded estimated duration.
    jobs_per_trial: int | Literal["auto"] = "auto"

    @field_validator("jobs_per_trial", mode="before")
    @classmethod
    def _auto_or_count(cls, v):
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= L.MAX_JOBS_PER_TRIAL):
            return v
        raise ValueError(f"must be auto or a whole number from 1 to {L.MAX_JOBS_PER_TRIAL} (got {v!r})")

    @model_validator(mode="after")
    def _whole_gpus_above_one(self):
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise ValueError("gpus above 1 must be a whole number")
        return self


class ModelEntry(BaseModel):
    """`{name, arch, <the architecture's parameters>}`; the parameters are checked by the arch."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    name: Name
    arch: Text
    # Changes to the suite's recipe for this model's jobs, e.g. {optimizer: {lr: 0.01}} for MobileNetV2.
    recipe: dict[str, Any] | None = None
    # The input channels this model sees (any architecture), e.g. [3]: the depth channel of an RGB-D dataset, so
    # teacher and student see different modalities of the same samples (zoo/models/base.py `create_model`).
    input_channels: list[Annotated[int, Field(ge=0, le=1_000_000)]] | None = Field(default=None, min_length=1,
                                                                                   max_length=100_000)


class TeacherEntry(ModelEntry):
    seed: Seed = 0
    stop_epoch: Epoch | None = None  # take the teacher at this epoch (early-stopped)
    # Snapshots of one training run: students of `<name>@<e>` learn from the teacher's weights after epoch e.
    stop_epochs: list[Epoch] = Field(default=[], max_length=1000)
    # A weights file for `arch` (a torchvision-compatible file, or your checkpoint: a state dict, {model: …} or
    # {state_dict: …}), relative to the suite: the teacher is taken as is, not trained.
    weights: Text | None = None


class EnsembleEntry(Strict):
    name: Name
    members: list[Text] = Field(min_length=2)
    combine: Literal["arithmetic", "geometric"] = "arithmetic"


class SearchEntry(Strict):
    """A hyperparameter search per cell ([teacher, student] pair): Optuna's sampler through Ray Tune's
    OptunaSearch, ASHA early stopping, chosen on the validation split (kdbench/orchestrate/search.py)."""

    method: Text  # a distillation method of the registry
    # hyperparameter -> one distribution: {uniform: [lo, hi]}, {loguniform: [lo, hi]}, {int: [lo, hi]}, {choice: [...]}
    space: dict[str, dict[str, list[Any]]] = Field(min_length=1)
    params: dict[str, Any] = {}  # the method's other hyperparameters, fixed for every trial
    trials: int = Field(default=8, gt=0, le=L.MAX_TRIALS)  # trial budget per cell
    # A metric of the dataset's task on the validation split, `val_<metric>` (never test: selection is on
    # validation); default: the task's primary one (val_acc for classification, val_rmse for regression).
    metric: Text | None = None
    scheduler: Literal["asha", "none"] = "asha"
    grace_epochs: Epoch = 1  # ASHA stops no trial before this many epochs
    seed: Seed | None = None  # the trials' training seed and the sampler's (default: the suite's first seed)
    pairs: list[list[Text]] | None = None  # cells to search; default: the suite's pairs (or full grid)


class DatasetEntry(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    name: Text


class TeacherInference(Strict):
    """How teachers are run for their students (kdbench/teachers/inference.py)."""

    engine: Literal["torch", "deepspeed"] = "torch"
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    tp_size: int = Field(default=1, ge=1, le=1024)  # DeepSpeed tensor parallelism across a node's GPUs

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
    topk: keep the k largest probabilities per sample.
    tail: uniform — the rest of the mass spread over the other classes (T = 1); lumped — per output position the
    top-k logits at the consumer method's temperature and one tail bucket (vocabulary-sized outputs; needs topk)."""

    enabled: Literal["auto"] | bool = "auto"
    views: Literal["all"] | int = "all"
    topk: int | None = Field(default=None, ge=1, le=L.MAX_INT)
    dtype: Literal["fp32", "fp16"] = "fp32"
    tail: Literal["uniform", "lumped"] = "uniform"
    max_gib: float = Field(default=64.0, gt=0, le=L.MAX_CACHE_GIB)  # auto: the suite's caches stay within this many GiB

    @field_validator("enabled", mode="before")
    @classmethod
    def _enabled(cls, v):
        if v != "auto" and not isinstance(v, bool):
            raise ValueError(f"must be auto, true (or on) or false (or off) (got {v!r})")
        return v

    @field_validator("views", mode="before")
    @classmethod
    def _views(cls, v):
        if v != "all" and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= L.MAX_EPOCHS):
            raise ValueError(f"must be all or a number of views in 1..{L.MAX_EPOCHS} (got {v!r})")
        return v

    @field_validator("tail")
    @classmethod
    def _tail(cls, v, info):
        if v == "lumped" and info.data.get("topk") is None:
            raise ValueError("lumped keeps the top-k logits and one tail bucket: give topk (e.g. topk: 64)")
        return v


class FinetuneTaskEntry(Strict):
    """One downstream task: a name (e.g. CoLA), a sequence_classification dataset, and the metric its score is
    (default: the task's primary one); a list is their mean (GLUE's rule for MRPC and QQP: F1 and accuracy)."""

    name: Name
    dataset: DatasetEntry
    metric: Text | list[Text] | None = None


class FinetuneEntry(Strict):
    """`finetune:` every trained model of the plan (or those named in `models`) fine-tuned on each task with a
    fresh head, per seed (kdbench/suite/finetune.py)."""

    recipe: Recipe
    tasks: list[FinetuneTaskEntry] = Field(min_length=1, max_length=1000)
    seeds: list[Seed] | None = Field(default=None, min_length=1)  # default: the suite's seeds
    models: list[Text] | None = Field(default=None, min_length=1)  # teachers and students by name; default: all


class PairParamsEntry(Strict):
    """A method's hyperparameters for one [teacher, student] pair (a paper's per-pair settings)."""

    pair: list[Text] = Field(min_length=2, max_length=2)  # [teacher or ensemble, student]
    method: Text
    params: dict[str, Any]


class SuiteFile(Strict):
    name: Name
    # Modules that register your own models, datasets or methods, imported before the suite is checked
    # and in every worker: `my_method` (my_method.py beside the suite), a path to a .py file relative to
    # the suite, or an importable module name (e.g. `mypkg.methods`).
    plugins: list[Text] = Field(default=[], max_length=1000)
    version: int = Field(default=1, ge=1, le=L.MAX_INT)
    description: str = Field(default="", max_length=L.MAX_DESCRIPTION_CHARS)
    dataset: DatasetEntry
    recipe: Recipe
    teachers: list[TeacherEntry] = []
    students: list[ModelEntry] = Field(min_length=1)
    methods: list[Any] = Field(min_length=1)  # `name` or `{name: {hyperparameters}}`; checked in load.py
    chains: list[list[Text]] = []
    # [teacher or ensemble, student] pairs to distil; when given, they replace the full teachers × students grid
    pairs: list[list[Text]] | None = None
    ensembles: list[EnsembleEntry] = []
    reference: Text | None = None  # CSV of published accuracies (teacher, student, method, paper_acc, source)
    search: SearchEntry | None = None  # per-cell hyperparameter search; the selected config runs over `seeds`
    seeds: list[Seed] = Field(min_length=1)
    resources: Resources = Resources()
    retries: int = Field(default=2, ge=0, le=L.MAX_RETRIES)  # Ray Tune retries of a job whose worker died or raised
    teacher_inference: TeacherInference = TeacherInference()
    teacher_cache: TeacherCache = TeacherCache()
    # validation: a validation split is held out of the training set (the honest protocol, the default);
    # paper: what the papers ran — the whole training set, the last epoch's weights (suite/protocol.py)
    protocol: Literal["validation", "paper"] = "validation"
    pair_params: list[PairParamsEntry] = Field(default=[], max_length=L.MAX_NODES)
    finetune: FinetuneEntry | None = None  # fine-tune the trained models on downstream tasks
