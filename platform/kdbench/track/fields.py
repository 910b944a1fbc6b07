"""What a job's MLflow run shows, derived from its result row (keys of RESULT_SCHEMA).

Params are the job's inputs (flattened, so the MLflow UI can filter and compare them); tags are the
leaderboard dimensions (for search); metrics are the row's outcomes.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_PARAM_VALUE, MAX_TAG_VALUE, MAX_KEY = 6000, 8000, 250  # MLflow's limits (mlflow.utils.validation)
PARAM_COLUMNS = ("kind", "dataset", "student", "student_arch", "teacher", "teacher_arch", "method", "seed",
                 "stop_epoch", "combine")
JSON_PARAMS = {"dataset_params": "dataset", "student_arch_params": "student_arch", "method_params": "method",
               "recipe": "recipe"}  # JSON column -> key prefix
TAG_COLUMNS = ("job_id", "kind", "suite", "task", "dataset", "teacher", "student", "method", "seed", "status")
METRIC_COLUMNS = ("test_acc", "val_acc", "teacher_test_acc", "teacher_agreement", "selected_epoch",
                  "epochs_trained", "final_train_loss", "wall_seconds", "device_seconds", "student_params",
                  "teacher_params")
_BAD_KEY_CHARS = re.compile(r"[^\w.\- /:]")  # MLflow rejects a whole batch over one bad key


def text(value: Any, limit: int) -> str:
    """A param/tag value: strings as they are, everything else as JSON (true, 0.1, [..])."""
    s = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return s[:limit]


def key(name: str) -> str:
    return _BAD_KEY_CHARS.sub("_", name)[:MAX_KEY]


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": 1}} under "recipe" -> {"recipe.a.b": 1}; lists stay whole (logged as JSON text)."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out.update(flatten(f"{prefix}.{k}", v))
    return out


def chain_text(row: dict[str, Any]) -> str | None:
    return " → ".join(row["chain"]) if row.get("chain") else None


def run_fields(row: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) of the job's run; None values are left out."""
    params = {c: row.get(c) for c in PARAM_COLUMNS}
    for column, prefix in JSON_PARAMS.items():
        if row.get(column):
            params.update(flatten(prefix, json.loads(row[column])))
    tags = {f"kdbench.{c}": row.get(c) for c in TAG_COLUMNS}
    tags["kdbench.chain"] = chain_text(row)
    return ({key(k): text(v, MAX_PARAM_VALUE) for k, v in params.items() if v is not None},
            {k: text(v, MAX_TAG_VALUE) for k, v in tags.items() if v is not None})


def final_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The row's outcomes: its columns above and every metric of its task (test_rmse, teacher_test_mae…)."""
    task_metrics = row.get("metrics") or {}
    if not isinstance(task_metrics, dict):  # Arrow reads a map column as a list of (key, value) pairs
        task_metrics = dict(task_metrics)
    out = {key(k): float(v) for k, v in task_metrics.items() if v is not None}
    return out | {c: float(row[c]) for c in METRIC_COLUMNS if row.get(c) is not None}


def run_name(row: dict[str, Any]) -> str:
    """"kd · big → small · s0"; teachers and baselines are named by their kind, not method "none"."""
    label = row.get("method") if row.get("kind") == "student" else row.get("kind")
    parts = [label, chain_text(row) or row.get("student")]
    if row.get("stop_epoch") is not None:
        parts.append(f"stop e{row['stop_epoch']}")
    if row.get("seed") is not None:
        parts.append(f"s{row['seed']}")
    return " · ".join(str(p) for p in parts if p is not None)
