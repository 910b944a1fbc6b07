"""MLflow behind a real `mlflow server` with a PostgreSQL backend store and artifacts on an S3 server
(moto on loopback): the tracker's runs land in PostgreSQL, its artifacts in the bucket, and
`kdbench sync` backfills a suite from an s3:// results store."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.results import result_row, write_plan, write_result
from kdbench.store import Store
from kdbench.suite import expand, load_suite
from kdbench.track import Tracker

from .conftest import TINY_SUITE, write_plan_rows, write_suite


@pytest.fixture(scope="module")
def client(mlflow_server):
    from mlflow import MlflowClient

    return MlflowClient(mlflow_server.uri)


def pg_count(postgres, sql: str, *args) -> int:
    import psycopg

    with psycopg.connect(postgres.uri) as conn:
        return conn.execute(sql, args).fetchone()[0]


def test_tracker_runs_land_in_postgres_and_artifacts_in_the_bucket(mlflow_server, postgres, s3_server, client,
                                                                    tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    exp = f"kdbench/pg-{uuid.uuid4().hex[:6]}"
    tracker = Tracker(mlflow_server.uri, exp)
    tracker.start_suite("tiny v1", {"jobs": 3}, {"kdbench.suite": "tiny"})
    entries = plan.entries[:3]
    for e in entries:
        row = result_row(e, "tiny", {"test_acc": 0.75, "val_acc": 0.7})
        tracker.start_job(e.job_id, row)
        for epoch in (1, 2):
            tracker.log_epoch(e.job_id, {"train_loss": 1.0 / epoch}, epoch)
        tracker.end_job(e.job_id, row)
    tracker.log_parent(metrics={"jobs_run": 3}, artifacts={"leaderboard/leaderboard.html": b"<p>board</p>"})
    assert tracker.close(timeout=120)

    experiment = client.get_experiment_by_name(exp)
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "kdbench.job_id" in r.data.tags]
    assert sorted(r.data.tags["kdbench.job_id"] for r in runs) == sorted(e.job_id for e in entries)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(m.value for m in client.get_metric_history(runs[0].info.run_id, "train_loss")) == [0.5, 1.0]
    # The runs are rows of PostgreSQL's tables, not of some local file.
    assert pg_count(postgres, "SELECT count(*) FROM runs WHERE experiment_id = %s",
                    int(experiment.experiment_id)) == 4  # three jobs and the parent
    # The parent's artifact went through the server to the S3 bucket.
    keys = s3_server.keys("mlflow/")
    assert any(k.endswith(f"{tracker.parent_run_id}/artifacts/leaderboard/leaderboard.html") for k in keys), keys
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=next(k for k in keys if k.endswith(
        f"{tracker.parent_run_id}/artifacts/leaderboard/leaderboard.html")))["Body"].read()
    assert body == b"<p>board</p>"


def test_sync_backfills_a_suite_from_an_s3_store(mlflow_server, postgres, client, s3_server, tmp_path):
    name = f"pg{uuid.uuid4().hex[:6]}"
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE.replace("name: tiny", f"name: {name}")))))
    store = Store(f"s3://{s3_server.bucket}/sync-{name}")
    write_plan(store, plan)
    for e in plan.entries:
        write_result(store, result_row(e, name, {"test_acc": 0.6, "val_acc": 0.6}))
        store.write_bytes(Store.artifact(e.job_id, "history.json"),
                          json.dumps([{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.4}]).encode())
    runner = CliRunner()
    args = ["sync", name, "--store", store.uri, "--tracking-uri", mlflow_server.uri]
    first = runner.invoke(app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert f"created {len(plan)} MLflow run(s) for suite {name}" in first.output
    experiment = client.get_experiment_by_name(f"kdbench/{name}")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "kdbench.job_id" in r.data.tags]
    assert len(runs) == len(plan) and {r.info.status for r in runs} == {"FINISHED"}
    history = client.get_metric_history(runs[0].info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.9), (2, 0.4)]
    again = runner.invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 0 and "created 0 MLflow run(s)" in again.output


def test_sync_against_an_s3_store_without_a_server_is_a_clear_error(s3_server):
    write_plan_rows(Store(f"s3://{s3_server.bucket}/none"), "x", [])  # a suite the store knows
    result = CliRunner().invoke(app, ["sync", "x", "--store", f"s3://{s3_server.bucket}/none"],
                                catch_exceptions=False, env={"MLFLOW_TRACKING_URI": ""})
    assert result.exit_code == 2 and "give an MLflow tracking server URI" in result.output
