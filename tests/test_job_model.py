"""The job model: typed recipes, one identity with its table of later defaults, JobResult = the results schema,
and a store written before the redesign reused whole."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.jobs import LATER_DEFAULTS, JobFinal, JobResult, Recipe
from kdbench.results import RESULT_SCHEMA, read_results
from kdbench.results.rows import plan_row, result_row
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite

ROOT = Path(__file__).resolve().parents[1]


def test_the_recipe_is_typed_with_every_default_filled_in(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    recipe = plan.entries[0].job.recipe
    assert isinstance(recipe, Recipe) and recipe.precision == "fp32" and recipe.optimizer.momentum == 0.9
    with pytest.raises(ValidationError):  # frozen
        recipe.epochs = 9  # type: ignore[misc]


def test_a_later_default_stays_out_of_the_identity_and_a_set_value_enters_it(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    job = next(e.job for e in plan.entries if e.job.kind == "student" and e.job.method.name == "kd")
    ident = job.identity()
    assert job.method.params["stop_epoch"] is None and "stop_epoch" not in ident["method"]["params"]
    assert not {"precision", "channels_last", "augment"} & set(ident["recipe"])
    assert not {"snapshots", "teacher_outputs", "teacher_inference"} & set(ident)
    bf16 = dataclasses.replace(job, recipe=job.recipe.model_copy(update={"precision": "bf16"}))
    assert bf16.identity()["recipe"]["precision"] == "bf16" and bf16.job_id != job.job_id
    # Only the component a row names: `input_dropout` is an mlp default, `stop_epoch` a kd one.
    assert {d.component for d in LATER_DEFAULTS} >= {"mlp", "kd", None}


def test_job_result_is_the_results_schema_field_for_field(tmp_path):
    assert RESULT_SCHEMA.names == [f.name for f in dataclasses.fields(JobResult)]
    entry = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE)))).entries[-1]
    final = JobFinal(task="classification", metrics={"test_acc": 0.5, "val_acc": 0.25, "teacher_test_acc": 0.75},
                     teacher_params=10, device_seconds=1.5, restarts=[2], counters={"teacher_forward_samples": 7})
    row = result_row(entry, "tiny", dataclasses.asdict(final))  # as a trial reports it through Tune
    assert (row["test_acc"], row["val_acc"], row["teacher_test_acc"]) == (0.5, 0.25, 0.75)
    assert row["metrics"] == final.metrics and row["counters"] == final.counters and row["task"] == "classification"
    assert (row["device_seconds"], row["restarts"], row["teacher_params"]) == (1.5, [2], 10)
    import pyarrow as pa

    pa.Table.from_pylist([row], schema=RESULT_SCHEMA)  # every value fits its column
    failed = result_row(entry, "tiny", None, status="failed", error="boom")
    assert failed["metrics"] is None and failed["restarts"] is None


def test_a_final_json_from_before_job_final_reads_with_nothing_lost():
    old = {"test_acc": 0.9, "val_acc": 0.8, "teacher_test_acc": None, "train_seconds": 3.0, "restarts": [],
           "teacher_forward_samples": 12, "fused": 2, "host": "h", "device": "cpu"}
    final = JobFinal.from_json(json.dumps(old))
    assert final.metrics == {"test_acc": 0.9, "val_acc": 0.8} and final.device_seconds == 3.0
    assert final.counters == {"teacher_forward_samples": 12, "fused": 2}
    assert final["test_acc"] == 0.9 and final["fused"] == 2 and final["host"] == "h"
    with pytest.raises(KeyError):
        final["nope"]


def test_plan_and_result_rows_spell_method_params_alike(tmp_path):
    entry = next(e for e in expand(load_suite(str(write_suite(tmp_path, TINY_SUITE)))).entries
                 if e.job.method.name == "kd")
    assert plan_row(entry, "tiny")["method_params"] == result_row(entry, "tiny")["method_params"]


def test_the_demo_store_written_before_the_redesign_reruns_nothing(tmp_path, monkeypatch):
    """tests/fixtures/store_v1: the 32 result rows the demo wrote at commit 1ba0f60 (schema 1), compacted."""
    store = tmp_path / "store"
    shutil.copytree(ROOT / "tests" / "fixtures" / "store_v1", store)
    rows = read_results(Store(str(store)))
    assert rows.num_rows == 32 and rows["task"].null_count == 32  # schema-1 files read with the new columns null
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(ROOT / "benchmarks" / "suites" / "quickstart.yaml"),
                                      "--store", str(store), "--no-track"])
    assert result.exit_code == 0, result.output
    assert "jobs: 32 total, 32 cached, 0 run, 0 failed" in result.output
