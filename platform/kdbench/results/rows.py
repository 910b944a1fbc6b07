"""Building a result row for a plan entry from the engine's final report or a failure."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kdbench.jobs import JobFinal, JobResult, canonical_json
from kdbench.suite.plan import PlanEntry
from kdbench.suite.protocol import protocol_of
from kdbench.version import RESULTS_SCHEMA_VERSION, __version__

from .schema import STATUS_OK

# JobFinal fields that are result columns of the same name.
_FINAL_COLUMNS = ("teacher_params", "student_params", "teacher_agreement", "selected_epoch", "epochs_trained",
                  "final_train_loss", "wall_seconds", "device_seconds", "restarts", "device", "host",
                  "torch_version", "python_version")


def as_final(final: JobFinal | dict[str, Any] | None) -> JobFinal | None:
    """A JobFinal from what a trial reported (its fields as a dict, since Tune results are plain values)."""
    if final is None or isinstance(final, JobFinal):
        return final
    return JobFinal.from_dict(final)


def result_row(entry: PlanEntry, suite: str, final: JobFinal | dict[str, Any] | None = None, *,
               status: str = STATUS_OK, error: str | None = None, mlflow_run_id: str | None = None,
               attempt: int | None = None) -> dict[str, Any]:
    job, final = entry.job, as_final(final)
    done = final or JobFinal(task=None)
    metrics = dict(done.metrics)
    row = JobResult(
        job_id=job.job_id, kind=job.kind, status=status, error=error, suite=suite, task=done.task,
        dataset=job.dataset.name, dataset_params=canonical_json(job.dataset.params), teacher=entry.teacher,
        direct_teacher=entry.chain[-2] if job.teachers and len(entry.chain) > 1 else None,
        teacher_arch="+".join(t.model.name for t in job.teachers) or None,
        student=entry.student, student_arch=job.model.name, student_arch_params=canonical_json(job.model.params),
        method=job.method.name, method_params=canonical_json(job.method.params), chain=list(entry.chain),
        upstream=[t.job_id for t in job.teachers], combine=job.combine, seed=job.seed, stop_epoch=job.stop_epoch,
        recipe=None if job.recipe is None else canonical_json(job.recipe.model_dump(mode="json")),
        protocol=protocol_of(job),
        metrics=metrics if final is not None else None, test_acc=metrics.get("test_acc"),
        val_acc=metrics.get("val_acc"), teacher_test_acc=metrics.get("teacher_test_acc"),
        mlflow_run_id=mlflow_run_id, kdbench_version=done.kdbench_version or __version__,
        counters=dict(done.counters) if final is not None else None, schema_version=RESULTS_SCHEMA_VERSION,
        finished_at=dt.datetime.now(dt.UTC), attempt=attempt,
        finetune_task=entry.task, finetune_metric="+".join(entry.metric) or None,
        finetune_from=None if job.start is None else job.start.job_id,
        **{c: getattr(final, c) if final else None for c in _FINAL_COLUMNS})
    return row.as_row()


def plan_row(entry: PlanEntry, suite: str) -> dict[str, Any]:
    job = entry.job
    return {"suite": suite, "job_id": job.job_id, "kind": job.kind, "teacher": entry.teacher,
            "student": entry.student, "method": job.method.name, "method_params": canonical_json(job.method.params),
            "chain": list(entry.chain), "upstream": [t.job_id for t in job.teachers], "seed": job.seed,
            "finetune_task": entry.task, "finetune_from": None if job.start is None else job.start.job_id}


__all__ = ["as_final", "plan_row", "result_row"]
