"""Faults injected for real: SIGKILLed workers and drivers, Ctrl-C, a lost node, MLflow down,
64 concurrent writers. Each test is bounded in time; none may lose or double a result."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from kdbench.results import open_results
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import write_suite
from .faults import epochs_done, finish, kdbench, ray_workers, result_count, wait_for

pytestmark = pytest.mark.slow

SLOW = """\
name: slow
dataset: {name: synthetic, n_train: 6000, n_val: 500, n_test: 500, dim: 64, num_classes: 5}
recipe: {epochs: 25, batch_size: 64}
teachers: [{name: big, arch: mlp, widths: [512, 512]}]
students: [{name: small, arch: mlp, widths: [8]}, {name: tiny, arch: mlp, widths: [4]}]
methods: [kd]
seeds: [0]
retries: 2
"""


def one_row_per_job(store: Store, path) -> dict[str, dict]:
    plan = expand(load_suite(str(path)))
    rows = open_results(store).to_arrow().to_pylist()
    assert sorted(r["job_id"] for r in rows) == sorted(e.job_id for e in plan.entries)  # none lost, none twice
    return {r["job_id"]: r for r in rows}


@pytest.mark.ray  # `kdbench run` in a subprocess
def test_a_worker_killed_mid_job_resumes_from_its_last_epoch(tmp_path):
    path = write_suite(tmp_path, SLOW)
    store = Store(tmp_path / "store")
    teacher = expand(load_suite(str(path))).entries[0].job_id
    proc = kdbench("run", str(path), "--store", store.uri, "--num-cpus", "2", "--no-track", "-q",
                   logs=tmp_path / "logs")
    try:
        wait_for(lambda: epochs_done(store, teacher) >= 3, 180, "the teacher's third epoch")
        workers = ray_workers(proc.pid)
        assert workers, "no Ray worker found"
        for w in workers:
            w.send_signal(signal.SIGKILL)
    finally:
        rc, out, err = finish(proc)
    assert rc == 0, err[-3000:]
    rows = one_row_per_job(store, path)
    assert all(r["status"] == "ok" for r in rows.values())
    [restart] = rows[teacher]["restarts"]
    assert 3 <= restart < 25  # resumed from its checkpoint, not from scratch


MANY = SLOW.replace("name: slow", "name: many").replace(
    "students: [{name: small, arch: mlp, widths: [8]}, {name: tiny, arch: mlp, widths: [4]}]",
    "students: [{name: s8, arch: mlp, widths: [8]}, {name: s4, arch: mlp, widths: [4]}]").replace(
    "seeds: [0]", "seeds: [0, 1]")


def mlflow_runs_per_job(store: Store, suite: str) -> dict[str, int]:
    import mlflow

    from kdbench.track import embedded_tracking_uri

    client = mlflow.MlflowClient(embedded_tracking_uri(store))
    exp = client.get_experiment_by_name(f"kdbench/{suite}")
    counts: dict[str, int] = {}
    for run in client.search_runs([exp.experiment_id], max_results=5000):
        if "kdbench.job_id" in run.data.tags:
            job = run.data.tags["kdbench.job_id"]
            counts[job] = counts.get(job, 0) + 1
            assert run.info.status == "FINISHED" and "test_acc" in run.data.metrics
    return counts


@pytest.mark.ray  # `kdbench run` in a subprocess
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_a_killed_driver_loses_nothing_and_the_rerun_doubles_nothing(tmp_path, how):
    path = write_suite(tmp_path, MANY)
    store = Store(tmp_path / "store")
    args = ("run", str(path), "--store", store.uri, "--num-cpus", "2", "-q")
    proc = kdbench(*args, logs=tmp_path / "first")
    try:
        wait_for(lambda: result_count(store) >= 3, 180, "three finished jobs")
        if how == "SIGKILL":
            os.kill(proc.pid, signal.SIGKILL)  # the driver alone, as the OOM killer would
        else:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
    finally:
        rc, out, err = finish(proc)
    if how == "SIGINT":
        assert rc == 130 and "interrupted: run the same command again" in err, err[-3000:]
    finished_before = {r["job_id"]: r["finished_at"] for r in open_results(store).to_arrow().to_pylist()}
    assert all(r["status"] == "ok" for r in open_results(store).to_arrow().to_pylist())  # no false failures
    total = len(expand(load_suite(str(path))))
    assert 3 <= len(finished_before) < total

    rc, out, err = finish(kdbench(*args, logs=tmp_path / "again"))
    assert rc == 0, err[-3000:]
    assert f"jobs: {total} total, {len(finished_before)} cached, {total - len(finished_before)} run" in out
    rows = one_row_per_job(store, path)
    assert all(r["status"] == "ok" for r in rows.values())
    assert all(rows[j]["finished_at"] == t for j, t in finished_before.items())  # finished jobs not rerun
    assert mlflow_runs_per_job(store, "many") == {j: 1 for j in rows}  # one run per job, all ended


NODE_LOST_SCRIPT = """
import json, sys, threading, time
from ray.cluster_utils import Cluster
from kdbench.orchestrate import RunOptions, run_suite
from kdbench.suite import expand, load_suite
from kdbench.store import Store
from tests.faults import epochs_done, wait_for

suite, store_uri = sys.argv[1], sys.argv[2]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the head runs no job
doomed = cluster.add_node(num_cpus=1)
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
store = Store(store_uri)
teachers = [e.job_id for e in expand(load_suite(suite)).entries if e.job.kind == "teacher"]
result = {}
thread = threading.Thread(target=lambda: result.update(
    counts=run_suite(suite, RunOptions(store=store_uri, address=cluster.address, track=False)).__dict__))
thread.start()
wait_for(lambda: all(epochs_done(store, t) >= 2 for t in teachers), 180, "both teachers running")
cluster.remove_node(doomed, allow_graceful=False)  # the node is lost with the job it was running
thread.join(timeout=400)
print("RESULT " + json.dumps(result), flush=True)  # Ray's raylet may print after this line
import ray
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.cluster  # a three-node ray.cluster_utils.Cluster in a subprocess
def test_a_lost_node_s_jobs_are_rescheduled_and_finish(tmp_path):
    import json
    import subprocess
    import sys

    text = SLOW.replace("name: slow", "name: nodes").replace(
        "teachers: [{name: big, arch: mlp, widths: [512, 512]}]",
        "teachers: [{name: big, arch: mlp, widths: [512, 512]}, {name: big2, arch: mlp, widths: [512, 512], "
        "seed: 1}]").replace(", {name: tiny, arch: mlp, widths: [4]}", "")
    path = write_suite(tmp_path, text)
    store = Store(tmp_path / "store")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", NODE_LOST_SCRIPT, str(path), store.uri], capture_output=True,
                         text=True, timeout=500, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    counts = json.loads(line.removeprefix("RESULT "))["counts"]
    assert (counts["total"], counts["run"], counts["failed"]) == (5, 5, 0)
    rows = one_row_per_job(store, path)
    assert all(r["status"] == "ok" for r in rows.values())
    restarted = [r for r in rows.values() if r["restarts"]]
    assert len(restarted) == 1 and restarted[0]["kind"] == "teacher"  # the lost node's job resumed elsewhere
    assert restarted[0]["restarts"][0] >= 2


def start_mlflow_server(tmp_path: Path, port: int):
    import subprocess
    import sys

    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
         "--default-artifact-root", str(tmp_path / "server" / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def server_up(uri: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200
    except OSError:
        return False


@pytest.mark.services  # its own `mlflow server`, killed and restarted, and `kdbench run` in a subprocess
def test_tracking_server_down_mid_suite_then_sync_matches_the_store(tmp_path):
    import socket

    import mlflow

    from .faults import kill_session

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(tmp_path, port)
    try:
        wait_for(lambda: server_up(uri), 90, "the MLflow server")
        path = write_suite(tmp_path, MANY)
        store = Store(tmp_path / "store")
        # Fail fast while the server is down (MLflow's default is minutes of retries per call).
        env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
        proc = kdbench("run", str(path), "--store", store.uri, "--num-cpus", "2", "-q", "--tracking-uri", uri,
                       logs=tmp_path / "run", env=env)
        try:
            wait_for(lambda: result_count(store) >= 2, 180, "two finished jobs")
            kill_session(server.pid)  # the tracking server dies mid-suite
        finally:
            rc, out, err = finish(proc)
        assert rc == 0, err[-3000:]
        assert "kdbench sync many" in err  # the user is told how to repair MLflow
        rows = one_row_per_job(store, path)  # the store is complete regardless
        assert all(r["status"] == "ok" for r in rows.values())

        server = start_mlflow_server(tmp_path, port)  # back, on the same database
        wait_for(lambda: server_up(uri), 90, "the MLflow server to come back")
        rc, out, err = finish(kdbench("sync", "many", "--store", store.uri, "--tracking-uri", uri,
                                      logs=tmp_path / "sync"))
        assert rc == 0, err[-3000:]
        client = mlflow.MlflowClient(uri)
        exp = client.get_experiment_by_name("kdbench/many")
        runs = [r for r in client.search_runs([exp.experiment_id], max_results=1000) if "kdbench.job_id" in r.data.tags]
        assert sorted(r.data.tags["kdbench.job_id"] for r in runs) == sorted(rows)  # exactly one run per job
        for r in runs:
            row = rows[r.data.tags["kdbench.job_id"]]
            assert r.info.status == "FINISHED" and r.data.metrics["test_acc"] == pytest.approx(row["test_acc"])
    finally:
        kill_session(server.pid)
