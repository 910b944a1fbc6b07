"""What a job leaves behind: `JobFinal` (the engine's report, written as final.json) and `JobResult` (one row
of the results table, field for field the columns of kdbench.results.schema.RESULT_SCHEMA, which is derived
from it). No key is renamed or dropped between the worker and the row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

# final.json keys written before JobFinal existed, and where they went (old files stay readable).
_OLD_KEYS = {"train_seconds": "device_seconds"}
_OLD_METRICS = ("test_acc", "val_acc", "teacher_test_acc")


@dataclass(frozen=True)
class JobFinal:
    """A finished job's report. `metrics` holds every metric of the job's task on each split it was measured
    on, named `<split>_<metric>` (test_acc, val_acc, test_rmse…; `teacher_test_<metric>` for its teacher);
    `counters` holds the counts a job kind reports (teacher forward passes, cache rows and bytes, fused
    group size)."""

    task: str = "classification"
    metrics: dict[str, float] = field(default_factory=dict)
    selected_epoch: int | None = None
    epochs_trained: int | None = None
    student_params: int | None = None
    teacher_params: int | None = None
    teacher_agreement: float | None = None  # classification: top-1 agreement with the teacher on test
    final_train_loss: float | None = None
    wall_seconds: float | None = None  # the whole job, loading included
    device_seconds: float | None = None  # time in training epochs (or inference views)
    restarts: list[int] = field(default_factory=list)  # epochs at which the job resumed after an interruption
    device: str | None = None
    host: str | None = None
    kdbench_version: str | None = None
    torch_version: str | None = None
    python_version: str | None = None
    counters: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> JobFinal:
        return cls.from_dict(json.loads(data))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JobFinal:
        """From its fields, or from the flat dict a final.json held before JobFinal existed."""
        known = {f.name for f in dataclasses.fields(cls)}
        if "metrics" not in raw:  # written before JobFinal: flat metrics, counters among the keys
            raw = {_OLD_KEYS.get(k, k): v for k, v in raw.items()}
            raw["metrics"] = {k: raw.pop(k) for k in _OLD_METRICS if raw.get(k) is not None}
            raw["counters"] = {k: raw.pop(k) for k in list(raw) if k not in known and isinstance(raw[k], int | float)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def __getitem__(self, name: str) -> Any:
        """A value by its result-column name: a field, else a metric (test_acc, val_rmse…), else a counter."""
        if name in _FIELDS:
            return getattr(self, name)
        for values in (self.metrics, self.counters):
            if name in values:
                return values[name]
        raise KeyError(name)


@dataclass(frozen=True)
class JobResult:
    """One row of the results table: a job's names in the suite that ran it, its recipe, and its fate."""

    job_id: str
    kind: str  # teacher | baseline | student | teacher_outputs | pretrained | finetune
    status: str  # ok | failed | skipped (an upstream job failed)
    error: str | None  # reason and traceback excerpt when not ok
    suite: str | None  # the suite whose run produced this row
    task: str | None  # the dataset's task (classification, regression, …)
    dataset: str | None
    dataset_params: str | None  # canonical JSON
    teacher: str | None  # teacher/ensemble name in `suite` (the chain's root)
    # The name of the model the job learned from directly: `teacher` for direct distillation, the previous
    # teacher assistant on a chain. `teacher_arch` and `teacher_params` describe this one.
    direct_teacher: str | None
    teacher_arch: str | None  # architecture(s) of the direct teacher(s), '+'-joined for ensembles
    teacher_params: int | None  # parameter count of the direct teacher(s) (sum over an ensemble's members)
    student: str | None  # name of the trained model in `suite`
    student_arch: str | None
    student_arch_params: str | None  # canonical JSON of the architecture's parameters
    student_params: int | None
    method: str | None
    method_params: str | None  # canonical JSON of the method's hyperparameters (defaults filled in)
    chain: list[str] | None  # names from the root teacher to the student
    upstream: list[str] | None  # job ids of the direct teachers
    combine: str | None  # arithmetic | geometric for ensembles
    seed: int | None
    stop_epoch: int | None  # early-stopped teachers
    recipe: str | None  # canonical JSON of the training recipe
    protocol: str | None  # validation (a held-out split; the recipe's `select`) or paper (whole train set, last epoch)
    metrics: dict[str, float] | None  # every metric of the task: test_<m>, val_<m>, teacher_test_<m>
    test_acc: float | None  # classification: metrics["test_acc"], kept as a column for SQL and old readers
    val_acc: float | None  # classification: metrics["val_acc"] (validation split, the selection split)
    teacher_test_acc: float | None  # classification: the (combined) teacher's test top-1
    teacher_agreement: float | None  # classification: test top-1 agreement between teacher and student
    selected_epoch: int | None
    epochs_trained: int | None
    final_train_loss: float | None
    wall_seconds: float | None  # whole job, loading included
    device_seconds: float | None  # time in training epochs
    restarts: list[int] | None  # epochs at which the job resumed after an interruption
    device: str | None
    host: str | None
    mlflow_run_id: str | None  # the job's MLflow run, when tracking knew it at write time
    kdbench_version: str | None
    torch_version: str | None
    python_version: str | None
    counters: dict[str, float] | None  # counts the job kind reports (teacher forwards, cache bytes, …)
    schema_version: int
    finished_at: dt.datetime  # the writer's clock: shown, never used to order a job's rows (see `attempt`)
    # The row's place in its job's sequence of rows (1, 2, …; each write adds one under the job's lease): the
    # highest wins, whatever any clock says. None in rows written before schema 3 (they lose to any counted row).
    attempt: int | None = None
    # Fine-tune jobs (schema 4): the downstream task's name in the suite (e.g. CoLA), the metric(s) its score is
    # ('+'-joined: their mean, GLUE's f1+acc for MRPC/QQP) and the job whose weights the fine-tuning started from.
    finetune_task: str | None = None
    finetune_metric: str | None = None
    finetune_from: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


_FIELDS = frozenset(f.name for f in dataclasses.fields(JobFinal))
