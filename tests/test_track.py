"""MLflow tracking: run layout, epoch histories, restarts without duplicate runs, outages, backfill.

One embedded sqlite tracking store for the module (creating one runs MLflow's migrations, ~3 s);
each test uses its own experiment.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import pytest

from kdbench.results.schema import RESULT_SCHEMA
from kdbench.results.store import write_result
from kdbench.store import Store
from kdbench.track import Tracker, backfill, embedded_tracking_uri, resolve, run_fields, run_name
from kdbench.track.fields import final_metrics
from kdbench.track.uri import embedded_artifact_root
from kdbench.track.writer import Writer

from .conftest import write_plan_rows

FINISHED_AT = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def make_row(job_id: str, status: str = "ok", **over) -> dict:
    row = dict.fromkeys(RESULT_SCHEMA.names)
    row.update(job_id=job_id, kind="student", status=status, suite="s", dataset="digits",
               dataset_params='{"val_fraction": 0.2}', teacher="big", teacher_arch="mlp", teacher_params=1000,
               student="small", student_arch="mlp", student_arch_params='{"hidden": [32, 16]}',
               student_params=100, method="kd", method_params='{"T": 4.0, "alpha": 0.9}',
               chain=["big", "small"], upstream=["t0"], seed=0,
               recipe='{"epochs": 3, "optimizer": {"lr": 0.1, "name": "sgd"}, "select": "best"}',
               schema_version=1, finished_at=FINISHED_AT)
    if status == "ok":
        row.update(test_acc=0.9, val_acc=0.91, teacher_test_acc=0.95, teacher_agreement=0.93,
                   selected_epoch=3, epochs_trained=3, final_train_loss=0.2, wall_seconds=5.0,
                   device_seconds=4.0)
    else:
        row["error"] = "boom"
    row.update(over)
    return row


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return Store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def uri(store) -> str:
    return embedded_tracking_uri(store)


@pytest.fixture(scope="module")
def client(uri):
    from mlflow import MlflowClient
    return MlflowClient(uri)


def runs_of(client, experiment: str, job_id: str | None = None) -> list:
    exp = client.get_experiment_by_name(experiment)
    where = f"tags.`kdbench.job_id` = '{job_id}'" if job_id else ""
    return client.search_runs([exp.experiment_id], where) if exp else []


# -- fields and URIs: no MLflow needed --------------------------------------------------------------

def test_run_fields_flatten_json_columns_and_skip_none():
    recipe = json.dumps({"notes": "x" * 7000, "optimizer": {"lr": 0.1}})
    params, tags = run_fields(make_row("j1", recipe=recipe))
    assert params["method.T"] == "4.0" and params["recipe.optimizer.lr"] == "0.1"
    assert params["student_arch.hidden"] == "[32, 16]" and params["dataset.val_fraction"] == "0.2"
    assert params["seed"] == "0" and "stop_epoch" not in params and "combine" not in params
    assert len(params["recipe.notes"]) == 6000  # MLflow's param value limit
    assert tags["kdbench.chain"] == "big → small" and tags["kdbench.status"] == "ok"
    assert tags["kdbench.job_id"] == "j1" and tags["kdbench.seed"] == "0"


def test_run_name_and_final_metrics():
    assert run_name(make_row("j")) == "kd · big → small · s0"
    teacher = make_row("t", kind="teacher", method="none", chain=["big"], stop_epoch=5, seed=1)
    assert run_name(teacher) == "teacher · big · stop e5 · s1"
    assert final_metrics(make_row("j", "failed")) == {"student_params": 100.0, "teacher_params": 1000.0}
    assert final_metrics(make_row("j"))["test_acc"] == 0.9


def test_resolve_prefers_a_server_and_embeds_under_the_store(tmp_path):
    local = Store(tmp_path)
    assert resolve(local, "http://mlflow:5000") == ("http://mlflow:5000", None)
    tracking, artifacts = resolve(local, None)
    assert tracking == f"sqlite:///{tmp_path}/mlflow/mlflow.db" and (tmp_path / "mlflow").is_dir()
    assert artifacts == embedded_artifact_root(local) == (tmp_path / "mlflow" / "artifacts").as_uri()


# -- the tracker --------------------------------------------------------------------------------------

def test_tracker_logs_parent_child_runs_epochs_and_finals(uri, store, client):
    exp = "kdbench/layout"
    t = Tracker(uri, exp, embedded_artifact_root(store))
    t.start_suite("run 1", {"suite_version": 2}, {"kdbench.suite": "layout"})
    ok, failed = make_row("j1"), make_row("j2", "failed", error="x" * 9000)
    t.start_job("j1", ok)
    for epoch in (1, 2, 3):
        metrics = {"train_loss": 1.0 / epoch, "val_acc": epoch / 10, "device": "cpu", "ok": True}
        t.log_epoch("j1", metrics, epoch)
    t.end_job("j1", ok)
    t.start_job("j2", failed)
    t.end_job("j2", failed)
    t.log_parent(metrics={"jobs": 2}, artifacts={"boards/main.html": b"<p>hi</p>"}, tags={"kdbench.n": 2})
    assert t.close(timeout=60)

    parent = client.get_run(t.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["kdbench.role"] == "parent"
    assert parent.data.params["suite_version"] == "2" and parent.data.metrics["jobs"] == 2
    assert [a.path for a in client.list_artifacts(t.parent_run_id, "boards")] == ["boards/main.html"]
    one, two = (client.get_run(t.run_id(j)) for j in ("j1", "j2"))
    for run in (one, two):
        assert run.data.tags["mlflow.parentRunId"] == t.parent_run_id
    assert one.info.run_name == "kd · big → small · s0" and one.info.status == "FINISHED"
    assert one.data.params["recipe.optimizer.lr"] == "0.1" and one.data.tags["kdbench.method"] == "kd"
    history = client.get_metric_history(one.info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert "device" not in one.data.metrics and "ok" not in one.data.metrics  # not numbers
    assert one.data.metrics["test_acc"] == 0.9 and one.info.end_time == FINISHED_AT.timestamp() * 1000
    assert two.info.status == "FAILED" and two.data.tags["kdbench.status"] == "failed"
    assert len(two.data.tags["kdbench.error"]) == 5000


def test_a_job_end_is_one_batch_of_what_changed(uri, client, monkeypatch):
    """A job's start sends its params; its end one log_batch: the tag that changed (status), the final
    metrics and the error; no tag is sent again with the value the run already has."""
    w = Writer(uri, "kdbench/one-batch", None)
    w.start_parent("p", {}, {}, lazy=False)
    batches = []
    real = w.client.log_batch
    monkeypatch.setattr(w.client, "log_batch", lambda run_id, **kw: batches.append(kw) or real(run_id, **kw))
    w.start_job("j", make_row("j", status="running", test_acc=None, val_acc=None), 0)
    (start,) = batches
    assert {p.key for p in start["params"]} >= {"method", "recipe.optimizer.lr"} and not start["tags"]
    batches.clear()
    w.end_job("j", make_row("j", status="failed", error="boom"))
    (end,) = batches
    assert {t.key: t.value for t in end["tags"]} == {"kdbench.status": "failed", "kdbench.error": "boom"}
    assert not end["params"]
    run = client.get_run(w.runs["j"].run_id)
    assert run.info.status == "FAILED" and run.data.tags["kdbench.suite"] == "s"
    assert run.data.tags["mlflow.parentRunId"] == w.parent_run_id
    batches.clear()
    w.runs["j"].status = "RUNNING"  # the same job run again and succeeding: the old error tag goes
    w.end_job("j", make_row("j"))
    assert {t.key: t.value for t in batches[0]["tags"]} == {"kdbench.status": "ok"}
    assert {m.key for m in batches[0]["metrics"]} >= {"test_acc", "val_acc"}
    assert "kdbench.error" not in client.get_run(w.runs["j"].run_id).data.tags


def test_restarted_driver_reuses_runs(uri, client):
    exp = "kdbench/restart"
    first = Tracker(uri, exp)
    first.start_suite("run 1", {}, {})
    first.start_job("j1", make_row("j1"))
    first.log_epoch("j1", {"train_loss": 1.0}, 1)
    first.start_job("j2", make_row("j2"))  # the driver dies during j2
    first.end_job("j1", make_row("j1"))
    assert first.close(timeout=60, status="KILLED")

    second = Tracker(uri, exp)
    second.start_suite("run 2", {}, {})
    second.end_job("j1", make_row("j1"))  # cached: a result existed, start_job was never called
    second.start_job("j2", make_row("j2"))
    second.log_epoch("j2", {"train_loss": 0.5}, 1)
    second.end_job("j2", make_row("j2", test_acc=0.8))
    second.end_job("j3", make_row("j3", "skipped", error="upstream failed"))
    assert second.close(timeout=60)

    assert second.created == 1  # j3 only
    for job in ("j1", "j2", "j3"):
        (run,) = runs_of(client, exp, job)
        assert run.data.tags["mlflow.parentRunId"] == second.parent_run_id
    j1, j2, j3 = (second.run_id(j) for j in ("j1", "j2", "j3"))
    assert j1 == first.run_id("j1") and j2 == first.run_id("j2")
    assert [m.value for m in client.get_metric_history(j1, "test_acc")] == [0.9]  # not logged twice
    assert client.get_run(j2).info.status == "FINISHED" and client.get_run(j2).data.metrics["test_acc"] == 0.8
    assert client.get_run(j3).info.status == "FAILED"
    assert client.get_run(first.parent_run_id).info.status == "KILLED"


def test_unreachable_server_never_raises_and_close_is_bounded(monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    caplog.set_level(logging.WARNING, logger="kdbench.track")
    start = time.monotonic()
    t = Tracker("http://127.0.0.1:9", "kdbench/down")
    t.start_suite("run", {}, {})
    t.start_job("j1", make_row("j1"))
    for epoch in range(50):
        t.log_epoch("j1", {"train_loss": 1.0}, epoch)
    t.end_job("j1", make_row("j1"))
    t.log_parent(artifacts={"a.txt": b"a"})
    assert time.monotonic() - start < 1.0  # nothing waited for MLflow
    assert t.run_id("j1") is None and t.parent_run_id is None
    assert t.close(timeout=3) is False
    assert time.monotonic() - start < 10
    assert any(r.name == "kdbench.track" and r.levelno == logging.WARNING for r in caplog.records)


def test_a_failed_setup_is_retried_and_the_parent_still_created(uri, client, monkeypatch):
    real, calls = Writer._experiment, []

    def flaky(self, *args):
        calls.append(args)
        if len(calls) == 1:
            raise ConnectionError("server down")
        return real(self, *args)

    monkeypatch.setattr(Writer, "_experiment", flaky)
    t = Tracker(uri, "kdbench/flaky")
    t.start_suite("run", {}, {})  # its setup fails
    t.end_job("j1", make_row("j1"))  # set up now: creates the parent first, then the job's run
    assert t.close(timeout=60) is False  # not everything went through
    (run,) = runs_of(client, "kdbench/flaky", "j1")
    assert t.parent_run_id is not None and run.data.tags["mlflow.parentRunId"] == t.parent_run_id
    assert client.get_run(t.parent_run_id).info.status == "FINISHED"


# -- backfill -----------------------------------------------------------------------------------------

def write_plan(store: Store, suite: str, job_ids: list[str]) -> None:
    write_plan_rows(store, suite, [{"job_id": j, "kind": "student"} for j in job_ids])


def test_backfill_creates_missing_runs_once(uri, store, client):
    suite, exp = "sync", "kdbench/sync"
    history = [{"epoch": e, "train_loss": 1.0 / e, "train_kd": 0.1 * e, "lr": 0.1, "val_acc": 0.5,
                "epoch_seconds": 0.01} for e in (1, 2)]
    write_plan(store, suite, ["b1", "b2", "b3", "b4"])  # b4 has no result yet
    write_result(store, make_row("b1", suite=suite))
    store.write_bytes(Store.artifact("b1", "history.json"), json.dumps(history).encode())
    write_result(store, make_row("b2", "failed", suite=suite))
    write_result(store, make_row("b3", "skipped", suite=suite))
    write_result(store, make_row("b5", suite=suite))  # not in the latest plan
    crashed = Tracker(uri, exp)  # a driver died while b2 ran: its run is left RUNNING
    crashed.start_suite("run", {}, {})
    crashed.start_job("b2", make_row("b2"))
    assert crashed.close(timeout=60, status="KILLED")

    assert backfill(store, suite, uri) == 2  # b1 and b3; b2's run is reused
    (b1,) = runs_of(client, exp, "b1")
    steps = [(m.step, m.value) for m in client.get_metric_history(b1.info.run_id, "train_kd")]
    assert sorted(steps) == [(1, 0.1), (2, 0.2)] and "epoch" not in b1.data.metrics
    assert b1.data.metrics["test_acc"] == 0.9 and b1.data.params["method.alpha"] == "0.9"
    sync = client.get_run(b1.data.tags["mlflow.parentRunId"])
    assert sync.data.tags["kdbench.role"] == "sync" and sync.info.run_name.startswith("sync ")
    (b2,) = runs_of(client, exp, "b2")
    assert b2.info.status == "FAILED" and b2.data.tags["mlflow.parentRunId"] == sync.info.run_id
    assert runs_of(client, exp, "b5") == [] and runs_of(client, exp, "b4") == []

    assert backfill(store, suite, uri) == 0
    assert len(runs_of(client, exp)) == 3 + 2  # three jobs, the crashed driver's parent, one sync parent


def test_interleaved_epochs_of_many_jobs_become_one_metrics_batch_per_job():
    from kdbench.track.tracker import coalesce

    events = [("start_job", "a", {}, 0), ("start_job", "b", {}, 0)]
    for epoch in (1, 2, 3):
        events += [("log_metrics", "a", [("loss", 1.0, 0, epoch)]), ("log_metrics", "b", [("loss", 2.0, 0, epoch)])]
    events += [("end_job", "a", {}), ("log_metrics", "b", [("loss", 2.0, 0, 4)]), ("end_job", "b", {})]
    out = coalesce(events)
    assert [e[:2] for e in out] == [("start_job", "a"), ("start_job", "b"), ("log_metrics", "a"),
                                    ("log_metrics", "b"), ("end_job", "a"), ("end_job", "b")]
    assert [p[3] for p in out[2][2]] == [1, 2, 3] and [p[3] for p in out[3][2]] == [1, 2, 3, 4]
    # A job's metrics never move before its start or after its end.
    assert coalesce([("log_metrics", "a", [1]), ("end_job", "a", {}), ("log_metrics", "a", [2])]) == \
        [("log_metrics", "a", [1]), ("end_job", "a", {}), ("log_metrics", "a", [2])]


def test_one_parent_per_plan_a_training_runs_experiment_and_the_leaderboard_as_a_table(uri, store, client):
    import pandas as pd

    exp = "kdbench/browse"
    board = pd.DataFrame({"method": ["kd", "none"], "test acc % ± 95% CI": ["96.11 ± 1.20", "92.41 ± 7.60"]})
    first = Tracker(uri, exp, embedded_artifact_root(store))
    first.start_suite("browse v1", {"jobs": 1}, {"kdbench.suite": "browse", "kdbench.plan": "p1"})
    first.end_job("j1", make_row("j1"))
    first.log_parent(metrics={"jobs_run": 1}, tables={"leaderboard/methods_table.json": board})
    assert first.close(timeout=60) and not first.reused_parent
    again = Tracker(uri, exp, embedded_artifact_root(store))  # a rerun of the same plan: the same parent
    again.start_suite("browse v1", {"jobs": 1}, {"kdbench.suite": "browse", "kdbench.plan": "p1"})
    again.log_parent(metrics={"jobs_run": 0})
    assert again.close(timeout=60) and again.reused_parent and again.parent_run_id == first.parent_run_id
    other = Tracker(uri, exp, embedded_artifact_root(store))  # another plan (the suite changed): a new parent
    other.start_suite("browse v2", {"jobs": 2}, {"kdbench.suite": "browse", "kdbench.plan": "p2"})
    other.log_parent(metrics={"jobs_run": 2})
    assert other.close(timeout=60) and other.parent_run_id != first.parent_run_id

    experiment = client.get_experiment_by_name(exp)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # opens on the runs view
    parents = client.search_runs([experiment.experiment_id], "tags.`kdbench.role` = 'parent'")
    assert len(parents) == 2
    parent = client.get_run(first.parent_run_id)
    assert parent.data.tags["kdbench.driver_runs"] == "2" and "#2" in parent.data.tags["mlflow.note.content"]
    assert parent.data.metrics["jobs_run"] == 0 and parent.info.status == "FINISHED"
    with open(client.download_artifacts(first.parent_run_id, "leaderboard/methods_table.json")) as f:
        table = json.load(f)
    assert table["columns"] == ["method", "test acc % ± 95% CI"] and table["data"][0] == ["kd", "96.11 ± 1.20"]


def test_the_embedded_database_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """A driver killed during MLflow's first migration must not leave a half-made database: it is built under a
    temporary name and linked into place; a second driver's build never replaces the first's database."""
    from mlflow import MlflowClient

    from kdbench.track import uri as uri_mod

    db = tmp_path / "mlflow.db"
    uri_mod.create_sqlite_atomically(f"sqlite:///{db}")
    client = MlflowClient(f"sqlite:///{db}")
    client.create_experiment("kept")
    uri_mod.create_sqlite_atomically(f"sqlite:///{db}")  # exists: nothing happens
    assert client.get_experiment_by_name("kept") is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]  # no temporary file left

    import os

    other = tmp_path / "raced.db"
    real_link = os.link

    def lose_the_race(src, dst):  # another driver linked its database first
        MlflowClient(f"sqlite:///{dst}").create_experiment("winner") if not os.path.exists(dst) else None
        real_link(src, dst)

    monkeypatch.setattr(uri_mod.os, "link", lose_the_race)
    uri_mod.create_sqlite_atomically(f"sqlite:///{other}")
    assert MlflowClient(f"sqlite:///{other}").get_experiment_by_name("winner") is not None
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
