"""Building a result row for a plan entry from the engine's final metrics or a failure."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kdbench.jobs import canonical_json
from kdbench.suite.plan import PlanEntry
from kdbench.version import RESULTS_SCHEMA_VERSION, __version__

from .schema import STATUS_OK


def result_row(entry: PlanEntry, suite: str, final: dict[str, Any] | None = None, *, status: str = STATUS_OK,
               error: str | None = None, mlflow_run_id: str | None = None) -> dict[str, Any]:
    job, final = entry.job, final or {}
    return {
        "job_id": job.job_id,
        "kind": job.kind,
        "status": status,
        "error": error,
        "suite": suite,
        "dataset": job.dataset.name,
        "dataset_params": canonical_json(job.dataset.params),
        "teacher": entry.teacher,
        "teacher_arch": "+".join(t.model.name for t in job.teachers) or None,
        "teacher_params": final.get("teacher_params"),
        "student": entry.student,
        "student_arch": job.model.name,
        "student_arch_params": canonical_json(job.model.params),
        "student_params": final.get("student_params"),
        "method": job.method.name,
        "method_params": canonical_json(job.method.params),
        "chain": list(entry.chain),
        "upstream": [t.job_id for t in job.teachers],
        "combine": job.combine,
        "seed": job.seed,
        "stop_epoch": job.stop_epoch,
        "recipe": canonical_json(job.recipe),
        "test_acc": final.get("test_acc"),
        "val_acc": final.get("val_acc"),
        "teacher_test_acc": final.get("teacher_test_acc"),
        "teacher_agreement": final.get("teacher_agreement"),
        "selected_epoch": final.get("selected_epoch"),
        "epochs_trained": final.get("epochs_trained"),
        "final_train_loss": final.get("final_train_loss"),
        "wall_seconds": final.get("wall_seconds"),
        "device_seconds": final.get("train_seconds"),
        "restarts": final.get("restarts"),
        "device": final.get("device"),
        "host": final.get("host"),
        "mlflow_run_id": mlflow_run_id,
        "kdbench_version": final.get("kdbench_version", __version__),
        "torch_version": final.get("torch_version"),
        "schema_version": RESULTS_SCHEMA_VERSION,
        "finished_at": dt.datetime.now(dt.UTC),
    }


def plan_row(entry: PlanEntry, suite: str) -> dict[str, Any]:
    job = entry.job
    return {"suite": suite, "job_id": job.job_id, "kind": job.kind, "teacher": entry.teacher,
            "student": entry.student, "method": job.method.name,
            "method_params": json.dumps(job.method.params, sort_keys=True), "chain": list(entry.chain),
            "upstream": [t.job_id for t in job.teachers], "seed": job.seed}
