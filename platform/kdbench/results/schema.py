"""The results table's schema: one row per finished or failed job, keyed by job id.

The schema is derived from `kdbench.jobs.JobResult`, field by field (its docstrings say what each column
holds; docs/results.md documents them). Readers see files written under every schema version: a column
a file lacks reads as null (`task` then means classification, see kdbench/results/store.py). Version
history: kdbench/version.py (RESULTS_SCHEMA_VERSION).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing

import pyarrow as pa

from kdbench.jobs import JobResult
from kdbench.version import RESULTS_SCHEMA_VERSION

STATUS_OK, STATUS_FAILED, STATUS_SKIPPED = "ok", "failed", "skipped"

_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), dt.datetime: pa.timestamp("us", tz="UTC"),
          list[str]: pa.list_(pa.string()), list[int]: pa.list_(pa.int64()),
          dict[str, float]: pa.map_(pa.string(), pa.float64())}
_NARROW = {"schema_version": pa.int32()}  # columns stored narrower than their Python type


def _field(f: dataclasses.Field, hints: dict) -> pa.Field:
    hint = hints[f.name]
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    base = next(a for a in args if a is not type(None)) if optional else hint
    return pa.field(f.name, _NARROW.get(f.name, _ARROW[base]), nullable=optional)


def _schema() -> pa.Schema:
    hints = typing.get_type_hints(JobResult)
    return pa.schema([_field(f, hints) for f in dataclasses.fields(JobResult)])


RESULT_SCHEMA = _schema()

PLAN_SCHEMA = pa.schema([
    pa.field("suite", pa.string(), nullable=False),
    pa.field("job_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("teacher", pa.string()),
    pa.field("student", pa.string()),
    pa.field("method", pa.string()),
    pa.field("method_params", pa.string()),  # canonical JSON, as in the results (plans written before: sorted JSON)
    pa.field("chain", pa.list_(pa.string())),
    pa.field("upstream", pa.list_(pa.string())),
    pa.field("seed", pa.int64()),
    pa.field("finetune_task", pa.string()),  # fine-tune jobs: the downstream task (plans written before: absent)
    pa.field("finetune_from", pa.string()),  # fine-tune jobs: the job whose weights it started from
])

__all__ = ["PLAN_SCHEMA", "RESULT_SCHEMA", "RESULTS_SCHEMA_VERSION", "STATUS_FAILED", "STATUS_OK",
           "STATUS_SKIPPED"]
