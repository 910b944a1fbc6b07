"""A job — one training run — and its content-addressed id (the SHA-256 of `identity.identity(job)`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal

from .identity import identity, job_id_of
from .recipe import Recipe

# teacher_outputs: a teacher's outputs over the views its students see, computed once (kdbench/teachers/cache.py).
# pretrained: a teacher taken from a weights file (its id covers the file's SHA-256, not its path).
# finetune: a trained model (its encoder) fine-tuned on a downstream task with a fresh head (suite `finetune:`).
JobKind = Literal["teacher", "baseline", "student", "teacher_outputs", "pretrained", "finetune"]


@dataclass(frozen=True)
class Component:
    """A registered component by name with its validated, default-filled parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    # A digest of the source of the plugin module(s) that define it (kdbench/suite/plugins.py `component_code`);
    # None for kdbench's own components, whose code is covered by the engine's semantics version. Part of
    # the identity only when set, so editing a plugin's code changes the ids of its jobs and nothing else's.
    code: str | None = None


@dataclass(frozen=True)
class Upstream:
    """A teacher of a student job: the job that trained it and its architecture."""

    job_id: str
    model: Component
    # A weights snapshot of the upstream job taken after this epoch (an early-stopped teacher taken from
    # one training run, see Job.snapshots); None: the job's selected result weights (model.pt).
    epoch: int | None = None

    @property
    def ref(self) -> str:
        """The upstream's part of a student's identity: the job id, with `@epoch` only for a snapshot."""
        return self.job_id if self.epoch is None else f"{self.job_id}@{self.epoch}"


@dataclass(frozen=True)
class Job:
    kind: JobKind
    dataset: Component
    model: Component
    recipe: Recipe | None  # None: a pretrained teacher (nothing is trained)
    method: Component
    seed: int
    stop_epoch: int | None = None
    teachers: tuple[Upstream, ...] = ()
    combine: Literal["arithmetic", "geometric"] | None = None
    # Teachers only: epochs after which weights snapshots are kept (artifacts/<id>/epoch_<e>.pt), so
    # students can learn from the teacher at those epochs without retraining it per epoch. The set is
    # part of the identity (only when non-empty, so ids without it are unchanged): a job whose result
    # exists is never rerun, so a finished teacher must already hold every snapshot its id promises.
    # Two suites asking for different sets of the same teacher train it twice; snapshotting every
    # epoch instead would cost epochs × model size of storage for every teacher (1.7 GB for a
    # ResNet-110 at 240 epochs), and leaving the set out of the id would let a cached teacher lack a
    # snapshot a new suite needs.
    snapshots: tuple[int, ...] = ()
    # Students: the teacher-output jobs (one per teacher, in `teachers` order) whose outputs the job reads
    # instead of running its teachers. Not part of the identity: exact outputs are what the teacher computes
    # live. A cache that changes the result (replayed views, fp16, top-k) is named in `replay`, which is.
    outputs: tuple[str, ...] = ()
    replay: dict[str, Any] | None = None
    # Students and teacher-output jobs: how the teacher runs (engine, dtype, tp); None: PyTorch fp32.
    teacher_inference: dict[str, Any] | None = None
    # Pretrained teachers: where the weights file is (like a dataset's root, not part of the identity).
    weights: str | None = None
    # Fine-tune jobs: the job whose result weights the model starts from (its encoder; the task's head is new).
    # Part of the identity only when set (jobs of other kinds keep their ids).
    start: Upstream | None = None

    def __post_init__(self) -> None:
        if isinstance(self.recipe, dict):  # typed once here, whoever builds the job
            object.__setattr__(self, "recipe", Recipe(**self.recipe))

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Jobs that must have finished before this one starts: its teachers and the outputs it reads."""
        return tuple(t.job_id for t in self.teachers) + self.outputs + ((self.start.job_id,) if self.start else ())

    def identity(self) -> dict[str, Any]:
        """What the job's id is the hash of (kdbench/jobs/identity.py)."""
        return identity(self)

    @cached_property
    def job_id(self) -> str:
        return job_id_of(self.identity())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (a trial's config); `from_dict` types them again."""
        out = asdict(self)
        out["recipe"] = None if self.recipe is None else self.recipe.model_dump(mode="json")
        return out

    @property
    def epochs(self) -> int:
        """Epochs this job trains (its stop epoch, else its recipe's); 0 for a pretrained teacher."""
        return 0 if self.recipe is None else (self.stop_epoch or self.recipe.epochs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        teachers = tuple(Upstream(t["job_id"], Component(**t["model"]), t.get("epoch")) for t in d["teachers"])
        start = d.get("start")
        start = None if start is None else Upstream(start["job_id"], Component(**start["model"]), start.get("epoch"))
        return cls(kind=d["kind"], dataset=Component(**d["dataset"]), model=Component(**d["model"]),
                   recipe=None if d["recipe"] is None else Recipe(**d["recipe"]),
                   method=Component(**d["method"]), seed=d["seed"],
                   stop_epoch=d["stop_epoch"], teachers=teachers, combine=d["combine"],
                   snapshots=tuple(d.get("snapshots", ())), outputs=tuple(d.get("outputs", ())),
                   replay=d.get("replay"), teacher_inference=d.get("teacher_inference"), weights=d.get("weights"),
                   start=start)
