"""From laptop to cluster, on this machine: a Ray cluster of a head and two worker nodes (separate
raylets, token authentication, dashboard on loopback), `kdbench submit` through the Ray Jobs API with
the store on an S3 server (moto) and MLflow on a PostgreSQL-backed server; plus the submit/status/
logs/stop commands' clear errors, which need no cluster.

The cluster is driven only from subprocesses (the `kdbench` and `ray` commands): this pytest process
may already hold a local Ray of its own (conftest's ray_local). It is torn down by killing the
process groups it started and any process whose command line names its own temp dir — never with
`ray stop`, which would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.suite import expand, load_suite

from .conftest import write_suite
from .services import free_port, wait_until

BIN = Path(sys.executable).parent
SUITE = """\
name: {name}
dataset: {{name: digits}}
recipe:
  epochs: 8
  batch_size: 32
  optimizer: {{name: sgd, lr: 0.05, momentum: 0.9}}
teachers:
  - {{name: t, arch: mlp, widths: [512, 512]}}
students:
  - {{name: s, arch: mlp, widths: [256]}}
methods: [none, kd]
seeds: [0, 1, 2, 3]
resources: {{cpus: 1}}
"""


def kdbench(*args: str, env: dict, timeout: float = 60, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdbench.cli", *args], env=env, cwd=cwd, timeout=timeout,
                          capture_output=True, text=True)


# -- errors, no cluster needed ------------------------------------------------------------------------

runner = CliRunner()


def test_submit_checks_the_suite_and_store_before_contacting_anything(tmp_path):
    text = SUITE.format(name="x")
    bad = write_suite(tmp_path, text.replace("epochs: 8", "epochs: -1"))
    assert bad.read_text() != text
    result = runner.invoke(app, ["submit", str(bad), "--address", "http://127.0.0.1:9", "--store", "/abs/s"])
    assert result.exit_code == 2 and str(bad) in result.output and "Traceback" not in result.output
    good = write_suite(tmp_path, SUITE.format(name="x"), "good.yaml")
    relative = runner.invoke(app, ["submit", str(good), "--address", "http://127.0.0.1:9", "--store", "rel"])
    assert relative.exit_code == 2 and "relative path" in relative.output
    untracked = runner.invoke(app, ["submit", str(good), "--address", "http://127.0.0.1:9", "--store", "s3://b/p"],
                              env={"MLFLOW_TRACKING_URI": ""})
    assert untracked.exit_code == 2 and "--tracking-uri" in untracked.output


@pytest.mark.parametrize("args", [["submit", "SUITE", "--store", "/abs/store"], ["status"], ["status", "job-1"],
                                  ["logs", "job-1"], ["stop", "job-1"]])
def test_an_unreachable_cluster_is_one_line_and_status_2_in_seconds(args, tmp_path):
    suite = write_suite(tmp_path, SUITE.format(name="x"))
    port = free_port()  # nothing listens there
    argv = [str(suite) if a == "SUITE" else a for a in args] + ["--address", f"http://127.0.0.1:{port}"]
    start = time.monotonic()
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "cannot reach a Ray cluster" in result.output and "Traceback" not in result.output
    assert time.monotonic() - start < 15
    wrong = runner.invoke(app, argv[:-1] + ["127.0.0.1:8265"])
    assert wrong.exit_code == 2 and "http(s)://HOST:PORT" in wrong.output


def test_the_staged_working_dir_holds_the_suite_reference_and_plugins(tmp_path):
    from kdbench.orchestrate.submit import stage

    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "paper.csv").write_text("teacher,student,method,paper_acc,source\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "plug.py").write_text("")  # a plugin file of the suite's folder, kept in its place
    text = SUITE.format(name="x") + "plugins: [tests.faulty_plugin, mine/plug.py]\nreference: refs/paper.csv\n"
    suite = load_suite(str(write_suite(tmp_path, text)))
    staged = tmp_path / "staged"
    staged.mkdir()
    assert stage(suite, staged) == "suite.yaml"
    files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert files == ["mine/plug.py", "refs/paper.csv", "suite.yaml", "tests/__init__.py", "tests/faulty_plugin.py"]


# -- the three-node cluster ---------------------------------------------------------------------------

class LocalCluster:
    """`ray start --head` and two `ray start --address` on this machine, each `--block`ed in its own
    process group so that the test can end exactly what it started."""

    def __init__(self, env: dict) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="kdbr-", dir="/tmp"))  # short: Ray's socket paths
        self.env, self.procs = env, []
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, name: str, args: list[str], resources: dict) -> subprocess.Popen:
        # A temp dir per node, as on separate machines: nodes sharing one would unpack a job's
        # working_dir into the same folder, under each other's running processes.
        ports = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
        cmd = [str(BIN / "ray"), "start", "--block", *args, "--node-ip-address", "127.0.0.1",
               "--temp-dir", str(self.temp / name), "--object-store-memory", str(100 * 2**20),
               "--resources", json.dumps(resources), "--disable-usage-stats"]
        for flag in ports:
            cmd += [flag, str(free_port())]
        log = open(self.temp / f"{name}.log", "wb")
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=self.temp)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self._start("head", ["--head", "--port", str(self.gcs_port), "--num-cpus", "0", "--include-dashboard",
                             "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
                             "--ray-client-server-port", str(free_port())], {"kdbench_head": 1})
        wait_until(lambda: len(self.nodes()) >= 1, 120, "Ray head", self.procs[0], self.temp / "head.log")
        # One at a time: on a busy 2-CPU machine two raylets registering at once can miss Ray's 30 s limit.
        for name in ("worker_a", "worker_b"):
            self._start_worker(name)

    def _start_worker(self, name: str, attempts: int = 3) -> None:
        """`ray start --address` gives a raylet 30 s (not configurable) to register with the GCS; on a
        loaded CI machine a first attempt can miss it (seen once: one GCS call hung for the whole 30 s).
        Starting the node is not what this test checks, so a node that did not come up is ended and
        started again, fresh ports and temp dir; the last failure carries every attempt's logs."""
        failures = []
        for attempt in range(attempts):
            label = name if attempt == 0 else f"{name}.{attempt}"
            proc = self._start(label, ["--address", f"127.0.0.1:{self.gcs_port}", "--num-cpus", "1"], {name: 1})
            try:
                wait_until(lambda: any(name in n["resources_total"] for n in self.nodes()), 120,
                           f"Ray node {label}", proc, self.temp / f"{label}.log")
                return
            except RuntimeError as e:
                failures.append(f"{e}\n{self._logs(label)}")
                self._end(proc, self.temp / label)
        raise RuntimeError("\n\n".join(failures))

    def _logs(self, label: str, tail: int = 1500) -> str:
        """The tails of a node's raylet and GCS-client logs, which say why it did not register."""
        found = sorted((self.temp / label).glob("session_*/logs/raylet.*"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in found)

    def _end(self, proc: subprocess.Popen, temp: Path) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        self._sweep(temp)

    def nodes(self) -> list[dict]:
        """The alive nodes, from the dashboard's state API (token-authenticated)."""
        req = urllib.request.Request(f"{self.dashboard}/api/v0/nodes?detail=1&limit=100",
                                     headers={"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            found = json.load(r)["data"]["result"]["result"]
        return [n for n in found if n.get("state") == "ALIVE"]

    def stop(self) -> None:
        for proc in self.procs:  # all at once: each `ray start --block` ends its node's processes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):  # what is left of the group, leader gone or not
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._sweep(self.temp)
        shutil.rmtree(self.temp, ignore_errors=True)

    def _sweep(self, temp: Path) -> None:
        """Ray's workers may outlive their raylet's process group: end those that name `temp`."""
        import psutil

        mine = str(temp)
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if p.pid != os.getpid() and any(mine in part for part in p.info["cmdline"] or []):
                    p.send_signal(signal.SIGKILL)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass


@pytest.fixture(scope="module")
def cluster(s3_server):
    token = uuid.uuid4().hex + uuid.uuid4().hex
    # Nothing of this process's own Ray (conftest's ray_local sets RAY_* variables) leaks into the cluster.
    env = {k: v for k, v in os.environ.items() if k not in set(s3_server.env()) and not k.startswith("RAY_")}
    # The raylets do not get the S3 variables: the submission must carry them to the workers.
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               RAY_USAGE_STATS_ENABLED="0")
    c = LocalCluster(env)
    try:
        c.start()
        yield c
    finally:
        c.stop()


# Nine jobs of a few seconds, five ready at the start: Tune reuses a finished trial's actor for the next
# job, so the other node's actor (starting up for ~10 s here) must find work still waiting.
@pytest.mark.slow
def test_submit_runs_a_suite_across_nodes_into_s3_and_postgres_mlflow(cluster, s3_server, mlflow_server, tmp_path):
    from mlflow import MlflowClient

    from kdbench.results import read_results
    from kdbench.store import Store

    name = f"e2e{uuid.uuid4().hex[:6]}"
    suite = write_suite(tmp_path, SUITE.format(name=name))
    plan = expand(load_suite(str(suite)))
    store = f"s3://{s3_server.bucket}/cluster-{name}"
    env = {**cluster.env, **s3_server.env()}  # the client's machine has the store's variables
    submitted = kdbench("submit", str(suite), "--address", cluster.dashboard, "--store", store,
                        "--tracking-uri", mlflow_server.uri, env=env, timeout=180, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stdout[-4000:] + submitted.stderr[-4000:]
    job_id = submitted.stdout.splitlines()[0].strip()
    assert job_id.startswith(f"kdbench-{name}-")
    assert f"jobs: {len(plan)} total, 0 cached, {len(plan)} run, 0 failed" in submitted.stdout
    assert f"job {job_id}: SUCCEEDED" in submitted.stderr

    st = Store(store)
    rows = read_results(st, plan.jobs).to_pylist()
    assert sorted(r["job_id"] for r in rows) == sorted(plan.jobs) and {r["status"] for r in rows} == {"ok"}
    placed = {j: json.loads(st.read_bytes(f"artifacts/{j}/placement.json")) for j in plan.jobs}
    workers = {n["node_id"]: n for n in cluster.nodes() if "kdbench_head" not in n["resources_total"]}
    used = {p["node_id"] for p in placed.values()}
    assert used <= set(workers) and len(used) >= 2, (used, workers.keys(), submitted.stdout[-3000:])
    assert s3_server.keys(f"cluster-{name}/ray/"), "Tune's experiment state is in the shared store"

    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name(f"kdbench/{name}")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "kdbench.job_id" in r.data.tags]
    assert sorted(r.data.tags["kdbench.job_id"] for r in runs) == sorted(plan.jobs)
    assert {r.info.status for r in runs} == {"FINISHED"}

    status = kdbench("status", job_id, "--address", cluster.dashboard, env=env)
    assert status.returncode == 0 and f"{job_id}: SUCCEEDED" in status.stdout, status.stderr
    table = kdbench("status", "--address", cluster.dashboard, env=env)
    assert job_id in table.stdout and name in table.stdout, table.stdout
    logs = kdbench("logs", job_id, "--address", cluster.dashboard, env=env)
    assert f"jobs: {len(plan)} total" in logs.stdout

    # Again without waiting: every job is found done in the store, and the logs can be followed.
    again = kdbench("submit", str(suite), "--address", cluster.dashboard, "--store", store, "--tracking-uri",
                    mlflow_server.uri, "--no-wait", env=env, timeout=60, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    second = again.stdout.strip().splitlines()[0]
    followed = kdbench("logs", second, "--follow", "--address", cluster.dashboard, env=env, timeout=120)
    assert f"jobs: {len(plan)} total, {len(plan)} cached, 0 run, 0 failed" in followed.stdout, followed.stdout[-3000:]
    stopped = kdbench("stop", second, "--address", cluster.dashboard, env=env)
    assert stopped.returncode == 0 and "had already ended" in stopped.stdout
    unknown = kdbench("status", "kdbench-nope", "--address", cluster.dashboard, env=env)
    assert unknown.returncode == 2 and "kdbench-nope" in unknown.stderr
