"""The results table's schema: one row per finished or failed job, keyed by job id.

This is the source of truth for every answer kdbench gives; it is documented column by column in
docs/results.md. Version history: see kdbench/version.py (RESULTS_SCHEMA_VERSION).
"""

from __future__ import annotations

import pyarrow as pa

from kdbench.version import RESULTS_SCHEMA_VERSION

STATUS_OK, STATUS_FAILED, STATUS_SKIPPED = "ok", "failed", "skipped"

RESULT_SCHEMA = pa.schema([
    pa.field("job_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),  # teacher | baseline | student
    pa.field("status", pa.string(), nullable=False),  # ok | failed | skipped (an upstream job failed)
    pa.field("error", pa.string()),  # reason and traceback excerpt when not ok
    pa.field("suite", pa.string()),  # the suite whose run produced this row
    pa.field("dataset", pa.string()),
    pa.field("dataset_params", pa.string()),  # JSON
    pa.field("teacher", pa.string()),  # teacher/ensemble name in `suite` (the chain's root)
    pa.field("teacher_arch", pa.string()),  # architecture(s), '+'-joined for ensembles
    pa.field("teacher_params", pa.int64()),  # parameter count (sum over an ensemble's members)
    pa.field("student", pa.string()),  # name of the trained model in `suite`
    pa.field("student_arch", pa.string()),
    pa.field("student_arch_params", pa.string()),  # JSON of the architecture's parameters
    pa.field("student_params", pa.int64()),
    pa.field("method", pa.string()),
    pa.field("method_params", pa.string()),  # JSON of the method's hyperparameters (defaults filled in)
    pa.field("chain", pa.list_(pa.string())),  # names from the root teacher to the student
    pa.field("upstream", pa.list_(pa.string())),  # job ids of the direct teachers
    pa.field("combine", pa.string()),  # arithmetic | geometric for ensembles
    pa.field("seed", pa.int64()),
    pa.field("stop_epoch", pa.int64()),  # early-stopped teachers
    pa.field("recipe", pa.string()),  # JSON of the training recipe
    pa.field("test_acc", pa.float64()),  # test top-1 of the selected epoch's weights
    pa.field("val_acc", pa.float64()),  # validation top-1 of the same weights (the selection split)
    pa.field("teacher_test_acc", pa.float64()),  # the (combined, for ensembles) teacher's test top-1
    pa.field("teacher_agreement", pa.float64()),  # test top-1 agreement between teacher and student
    pa.field("selected_epoch", pa.int64()),
    pa.field("epochs_trained", pa.int64()),
    pa.field("final_train_loss", pa.float64()),
    pa.field("wall_seconds", pa.float64()),  # whole job, loading included
    pa.field("device_seconds", pa.float64()),  # time in training epochs
    pa.field("restarts", pa.list_(pa.int64())),  # epochs at which the job resumed after an interruption
    pa.field("device", pa.string()),
    pa.field("host", pa.string()),
    pa.field("mlflow_run_id", pa.string()),  # the job's MLflow run, when tracking knew it at write time
    pa.field("kdbench_version", pa.string()),
    pa.field("torch_version", pa.string()),
    pa.field("schema_version", pa.int32(), nullable=False),
    pa.field("finished_at", pa.timestamp("us", tz="UTC"), nullable=False),
])

PLAN_SCHEMA = pa.schema([
    pa.field("suite", pa.string(), nullable=False),
    pa.field("job_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("teacher", pa.string()),
    pa.field("student", pa.string()),
    pa.field("method", pa.string()),
    pa.field("method_params", pa.string()),
    pa.field("chain", pa.list_(pa.string())),
    pa.field("upstream", pa.list_(pa.string())),
    pa.field("seed", pa.int64()),
])

__all__ = ["PLAN_SCHEMA", "RESULT_SCHEMA", "RESULTS_SCHEMA_VERSION", "STATUS_FAILED", "STATUS_OK",
           "STATUS_SKIPPED"]
