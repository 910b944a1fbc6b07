"""A job — one training run — and its content-addressed identity.

The id is the SHA-256 of the canonical JSON of everything that determines the job's result:
kind, dataset and its parameters (the split is a function of them), model, recipe, method and
its hyperparameters (defaults filled in), seed, stop epoch, upstream job ids, and the engine's
semantics version. Names, resources and the suite are not part of it: equal ids mean equal work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal

from kdbench.version import JOB_SEMANTICS

# teacher_outputs: a teacher's outputs over the views its students see, computed once (kdbench/teachers/cache.py).
# pretrained: a teacher taken from a weights file (its id covers the file's SHA-256, not its path).
JobKind = Literal["teacher", "baseline", "student", "teacher_outputs", "pretrained"]
ID_LENGTH = 20  # hex characters: 80 bits, collision-free for any plausible store
LOCATION_PARAMS = frozenset({"root"})  # dataset parameters that say where the files are, not what they hold


@dataclass(frozen=True)
class Component:
    """A registered component by name with its validated, default-filled parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


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
    recipe: dict[str, Any]
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

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Jobs that must have finished before this one starts: its teachers and the outputs it reads."""
        return tuple(t.job_id for t in self.teachers) + self.outputs

    def identity(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            # Where the data lives is not what it is: the same dataset under two paths is one job.
            "dataset": {"name": self.dataset.name,
                        "params": {k: v for k, v in self.dataset.params.items() if k not in LOCATION_PARAMS}},
            "model": asdict(self.model),
            "recipe": self.recipe,
            "method": asdict(self.method),
            "seed": self.seed,
            "stop_epoch": self.stop_epoch,
            # An ensemble's mean does not depend on member order; a single teacher is a list of one.
            "upstream": sorted(t.ref for t in self.teachers),
            "combine": self.combine,
            "semantics": JOB_SEMANTICS,
        } | ({"snapshots": sorted(self.snapshots)} if self.snapshots else {}) \
          | ({"teacher_outputs": self.replay} if self.replay else {}) \
          | ({"teacher_inference": self.teacher_inference} if self.teacher_inference else {})

    @cached_property
    def job_id(self) -> str:
        return job_id_of(self.identity())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        teachers = tuple(Upstream(t["job_id"], Component(**t["model"]), t.get("epoch")) for t in d["teachers"])
        return cls(kind=d["kind"], dataset=Component(**d["dataset"]), model=Component(**d["model"]),
                   recipe=d["recipe"], method=Component(**d["method"]), seed=d["seed"],
                   stop_epoch=d["stop_epoch"], teachers=teachers, combine=d["combine"],
                   snapshots=tuple(d.get("snapshots", ())), outputs=tuple(d.get("outputs", ())),
                   replay=d.get("replay"), teacher_inference=d.get("teacher_inference"), weights=d.get("weights"))


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def job_id_of(identity: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:ID_LENGTH]
