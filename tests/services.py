"""Real services on loopback for the cluster-side tests: an S3-compatible server (moto), a PostgreSQL
server (Debian's binaries) and an `mlflow server` with PostgreSQL as its backend store and the S3
server as its artifact store. Each starts on a free port on 127.0.0.1 with a bounded wait, and is
stopped (and its files removed) by its session fixture.

Why the tests start their own PostgreSQL instead of `.ci/run` starting one: a test file then runs
alone (`pytest tests/test_postgres_mlflow.py`) exactly as in CI, every session gets an empty
database, and no server outlives the tests. `.ci/run` only guarantees the binaries are installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "kdbench-test"
S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"  # moto accepts any credentials


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    """Poll `check()` until it is truthy; fail with the service's log if it died or the time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            value = check()
            if value:
                return value
        except Exception:  # not up yet
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    state = "exited" if proc is not None and proc.poll() is not None else f"not up after {timeout:.0f} s"
    raise RuntimeError(f"{what} {state}\n{tail}")


def stop_process(proc: subprocess.Popen, timeout: float = 10, sig: int = signal.SIGTERM) -> None:
    """Stop a process we started (and its process group, its own session), politely then firmly."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


# -- S3 (moto) ------------------------------------------------------------------------------------

@dataclass
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str

    def env(self) -> dict[str, str]:
        """What a kdbench process needs to use this server as its store."""
        return {"KDBENCH_S3_ENDPOINT": self.endpoint, "AWS_ENDPOINT_URL": self.endpoint,
                "MLFLOW_S3_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": S3_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": S3_REGION}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_SECRET, region_name=S3_REGION)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server in a thread of this process, on a free loopback port, with one bucket.
    The object-store variables are set for the session so that Store('s3://…') finds it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = S3Server(f"http://{host}:{port}", BUCKET)
    saved = {k: os.environ.get(k) for k in s3.env()}
    os.environ.update(s3.env())
    try:
        wait_until(lambda: s3.client().list_buckets() is not None, 20, "moto S3 server")
        s3.client().create_bucket(Bucket=BUCKET)
        yield s3
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


# -- PostgreSQL -----------------------------------------------------------------------------------

def pg_bindir() -> str | None:
    """Debian installs PostgreSQL's server programs under /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(os.path.realpath(found))
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return dirs[-1] if dirs else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: CI runs as root, so run its programs as `postgres`."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class Postgres:
    uri: str  # postgresql://kdbench@127.0.0.1:PORT/NAME


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1 with one database; removed at the end."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed (apt-get install -y postgresql; .ci/run does it)")
    base = Path(tempfile.mkdtemp(prefix="kdbench-pg-"))
    data, log = base / "data", base / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = free_port()
    subprocess.run(_as_postgres([f"{bindir}/initdb", "-D", str(data), "-U", "kdbench", "-A", "trust",
                                 "-E", "UTF8", "--no-sync"]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    # -k: the socket goes to our own folder (not /var/run/postgresql, which may not exist).
    opts = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"
    proc = subprocess.Popen(_as_postgres([f"{bindir}/postgres", "-D", str(data), *opts.split()]),
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import psycopg  # psycopg 3: SQLAlchemy 2.1's (so MLflow's) default driver for postgresql://

        admin = f"postgresql://kdbench@127.0.0.1:{port}/postgres"

        def ready():
            psycopg.connect(admin, connect_timeout=2).close()
            return True

        wait_until(ready, 60, "PostgreSQL", proc, log)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE mlflow")
        yield Postgres(f"postgresql://kdbench@127.0.0.1:{port}/mlflow")
    finally:
        stop_process(proc, 30, signal.SIGINT)  # "fast" shutdown: no waiting for clients to leave
        shutil.rmtree(base, ignore_errors=True)


# -- MLflow server --------------------------------------------------------------------------------

@dataclass
class MlflowServer:
    uri: str  # http://127.0.0.1:PORT
    artifacts: str  # s3://bucket/mlflow


@pytest.fixture(scope="session")
def mlflow_server(postgres, s3_server, tmp_path_factory):
    """`mlflow server` with the PostgreSQL backend store and artifacts proxied to the S3 server."""
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    artifacts = f"s3://{s3_server.bucket}/mlflow"
    env = {**os.environ, **s3_server.env()}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres.uri,
           "--artifacts-destination", artifacts, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                return r.status == 200

        wait_until(healthy, 90, "mlflow server", proc, log)
        yield MlflowServer(uri, artifacts)
    finally:
        stop_process(proc, 20)
