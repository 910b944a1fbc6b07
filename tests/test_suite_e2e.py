"""A small suite through Ray Tune into the results store and the embedded MLflow, and back again."""

from __future__ import annotations

import os

import duckdb
import mlflow
import pyarrow.compute as pc
import pytest

from kdbench.orchestrate import RunOptions, run_suite
from kdbench.results import RESULT_SCHEMA, open_results
from kdbench.results.report import build_leaderboard
from kdbench.store import Store
from kdbench.suite import expand, load_suite
from kdbench.track import embedded_tracking_uri

from .conftest import FAULTY_SUITE, TINY_SUITE, write_suite

pytestmark = pytest.mark.slow


def child_runs(store: Store, suite: str):
    client = mlflow.MlflowClient(embedded_tracking_uri(store))
    exp = client.get_experiment_by_name(f"kdbench/{suite}")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    return client, [r for r in runs if "kdbench.job_id" in r.data.tags], \
        [r for r in runs if r.data.tags.get("kdbench.role") == "parent"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("e2e")
    path = write_suite(tmp, TINY_SUITE)
    store = Store(tmp / "store")
    counts = run_suite(str(path), RunOptions(store=store.uri))
    return path, store, counts


def test_every_job_runs_once_into_the_store(finished):
    path, store, counts = finished
    plan = expand(load_suite(str(path)))
    assert (counts.total, counts.cached, counts.run, counts.failed) == (len(plan), 0, len(plan), 0)
    table = open_results(store).to_arrow()
    assert sorted(table["job_id"].to_pylist()) == sorted(e.job_id for e in plan.entries)
    assert set(table["status"].to_pylist()) == {"ok"}
    students = table.filter(pc.equal(table["kind"], "student"))
    assert all(a is not None for a in students["teacher_agreement"].to_pylist())


def test_plain_duckdb_reads_the_documented_columns(finished):
    _, store, _ = finished
    glob = f"{store.root}/results/**/*.parquet"
    cols = duckdb.sql(f"select * from read_parquet('{glob}') limit 0").columns
    assert cols == RESULT_SCHEMA.names
    [(n,)] = duckdb.sql(f"select count(*) from read_parquet('{glob}') where status = 'ok'").fetchall()
    assert n == finished[2].total


def test_mlflow_holds_a_parent_with_the_leaderboard_and_a_child_per_job(finished):
    _, store, counts = finished
    client, children, parents = child_runs(store, "tiny")
    assert len(parents) == 1
    assert len(children) == counts.total
    assert len({r.data.tags["kdbench.job_id"] for r in children}) == counts.total
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "leaderboard")}
    assert {"leaderboard/leaderboard.html", "leaderboard/methods.png", "leaderboard/methods.csv"} <= artifacts
    # The study views with rows (this suite has a chain and an ensemble) reach the parent run too, as in the store.
    for view in ("takd", "ensembles", "methods", "efficiency"):
        assert {f"leaderboard/view-{view}.html", f"leaderboard/view-{view}.png"} <= artifacts, view
        assert store.exists(f"leaderboards/tiny/views/view-{view}.html")
    # Every epoch once, at its step, though the trials sent progress at most every 5 s (batched epochs).
    for child in children:
        if child.data.params.get("kind") != "teacher_outputs":
            steps = [m.step for m in client.get_metric_history(child.info.run_id, "train_loss")]
            assert sorted(steps) == list(range(1, len(steps) + 1)) and len(steps) >= 3, (child.data.params, steps)
    some = children[0]
    assert some.data.tags["kdbench.status"] == "ok" and some.info.status == "FINISHED"


def test_rerun_runs_nothing_and_resumes_what_is_missing(finished):
    path, store, counts = finished
    again = run_suite(str(path), RunOptions(store=store.uri))
    assert (again.cached, again.run, again.failed) == (counts.total, 0, 0)
    assert again.summary() == f"jobs: {counts.total} total, {counts.total} cached, 0 run, 0 failed"

    # A driver that died after some jobs finished but before their rows were written: the rerun
    # runs exactly those jobs, and no job gets a second row or a second MLflow run.
    for rel in store.list_files("results", ".parquet")[:3]:
        os.remove(store.path(rel))
    resumed = run_suite(str(path), RunOptions(store=store.uri))
    assert (resumed.cached, resumed.run) == (counts.total - 3, 3)
    assert open_results(store).to_arrow().num_rows == counts.total
    _, children, parents = child_runs(store, "tiny")
    # One parent run for the plan, updated by each of the three drivers (and saying so), not three parents.
    assert len(children) == counts.total and len(parents) == 1
    assert parents[0].data.tags["kdbench.driver_runs"] == "3" and parents[0].data.metrics["jobs_run"] == 3


def test_failed_jobs_are_recorded_and_do_not_stop_the_suite(tmp_path, ray_local):
    # Baselines diverge (lr 1000, momentum 0.99 → non-finite loss) with retries on: failure is deterministic, so it
    # is recorded at once; teachers' dependants are skipped with the reason.
    text = TINY_SUITE.replace("lr: 0.1", "lr: 1000, momentum: 0.99").replace("name: tiny", "name: broken")
    counts = run_suite(str(write_suite(tmp_path, text)), RunOptions(store=str(tmp_path / "s"), track=False))
    table = open_results(tmp_path / "s").to_arrow().to_pylist()
    by_status = {}
    for row in table:
        by_status.setdefault(row["status"], []).append(row)
    assert counts.failed == len(by_status["failed"]) == 4  # 2 teachers + 2 baselines
    assert counts.skipped == len(by_status["skipped"]) == counts.total - 4
    assert all("NonFiniteLoss" in r["error"] for r in by_status["failed"])
    assert all(r["error"].startswith("upstream job ") for r in by_status["skipped"])


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a listening socket on `port`, read from /proc (no traffic sent)."""
    import socket
    import struct

    found = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(socket.inet_ntoa(struct.pack("<I", int(addr, 16))))
    return found


def test_kdbench_ui_serves_the_suite_on_loopback(finished):
    import json
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    _, store, _ = finished
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "kdbench.cli", "ui", "--store", store.uri, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=kdbench/tiny"
    try:
        deadline, body = time.monotonic() + 90, None
        while time.monotonic() < deadline and body is None:
            try:
                body = json.load(urllib.request.urlopen(url, timeout=5))
            except OSError:
                time.sleep(0.5)
        assert body is not None and body["experiment"]["name"] == "kdbench/tiny"
        assert listening_addresses(port) == {"127.0.0.1"}  # bound to loopback only
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)




def test_exceptions_in_a_method_are_retried_then_recorded_and_the_suite_goes_on(tmp_path, ray_local):
    path = write_suite(tmp_path, FAULTY_SUITE)
    store = Store(tmp_path / "s")
    counts = run_suite(str(path), RunOptions(store=store.uri, track=False))
    assert (counts.total, counts.run, counts.failed) == (5, 3, 2)  # teacher, baseline, kd ok
    rows = {r["method"]: r for r in open_results(store).to_arrow().to_pylist()}
    assert rows["test_raise_in_loss"]["status"] == "failed"
    assert "RuntimeError: boom inside the method's loss" in rows["test_raise_in_loss"]["error"]
    assert "Traceback" in rows["test_raise_in_loss"]["error"]  # with the excerpt
    assert "OutOfMemoryError" in rows["test_out_of_memory"]["error"]
    for method in ("test_raise_in_loss", "test_out_of_memory"):
        job_id = rows[method]["job_id"]
        with open(store.path(f"ray/faulty/job-{job_id}/error.txt")) as f:  # Tune's own log of the attempts
            assert f.read().count("Failure # ") == 2  # the first try and one retry
    board = build_leaderboard(store, "faulty").methods.to_pylist()
    assert {(r["method"], r["n"], r["failed"]) for r in board} >= {("test_raise_in_loss", 0, 1),
                                                                   ("test_out_of_memory", 0, 1)}


def test_a_corrupt_teacher_is_retrained_before_its_students(tmp_path, ray_local):
    path = write_suite(tmp_path, FAULTY_SUITE.replace("[kd, test_raise_in_loss, test_out_of_memory]", "[kd]"))
    store = Store(tmp_path / "s")
    assert run_suite(str(path), RunOptions(store=store.uri, track=False)).run == 3
    plan = expand(load_suite(str(path)))
    teacher, student = plan.entries[0].job_id, next(e.job_id for e in plan.entries if e.job.kind == "student")
    before = open_results(store).sql(f"select test_acc from results where job_id = '{teacher}'").to_pylist()
    # The teacher's weights are tampered with and the student's result is gone: the next run must
    # not distil from garbage; it restores the teacher from its (intact) last checkpoint first.
    data = bytearray(store.read_bytes(f"artifacts/{teacher}/model.pt"))
    data[-5] ^= 0xFF
    store.write_bytes(f"artifacts/{teacher}/model.pt", bytes(data))
    for name in ("final.json", "last.pt", "model.pt"):
        os.remove(store.path(f"artifacts/{student}/{name}"))
    os.remove(store.path(f"results/{student[:2]}/{student}.parquet"))
    counts = run_suite(str(path), RunOptions(store=store.uri, track=False))
    assert (counts.cached, counts.run, counts.failed) == (1, 2, 0)
    table = open_results(store)
    assert table.to_arrow().num_rows == 3  # the teacher's row replaced, not doubled
    assert table.sql(f"select test_acc from results where job_id = '{teacher}'").to_pylist() == before
