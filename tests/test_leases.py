"""Job leases (kdbench/orchestrate/lease.py): one holder at a time on a local disk and on S3 (moto), a holder
that was SIGKILLed is taken over (at once on its own machine, after the TTL from another), a stalled holder
learns it lost the job; and two real `kdbench run` drivers racing on one store train every job once."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from kdbench.orchestrate.lease import LEASES, Leases
from kdbench.store import Store

from .conftest import ROOT, write_suite
from .faults import finish, kdbench


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return Store(tmp_path / "store")
    s3 = request.getfixturevalue("s3_server")
    return Store(f"s3://{s3.bucket}/leases-{uuid.uuid4().hex[:8]}")


def test_one_holder_at_a_time_and_a_released_lease_is_free(store):
    a, b = Leases(store, ttl=60), Leases(store, ttl=60)
    assert a.acquire("job1") and not b.acquire("job1") and not b.acquire("job1")
    assert b.acquire("job2") and not a.acquire("job2")
    a.release("job1")
    assert b.acquire("job1")
    b.close()
    assert store.list_files(LEASES) == []  # nothing held, nothing left


def test_a_holder_that_stops_renewing_is_taken_over_after_the_ttl_and_learns_it(store):
    holder, waiter = Leases(store, ttl=600), Leases(store, ttl=1.0)  # the holder renews every 200 s: not here
    holder.me["host"] = "another-machine"  # its pid cannot be checked from here: only expiry can tell
    assert holder.acquire("job")
    assert not waiter.acquire("job")  # first look: the waiter's clock starts
    time.sleep(0.5)
    assert not waiter.acquire("job")
    time.sleep(0.7)
    assert waiter.acquire("job")  # unchanged for more than the TTL on the waiter's clock
    assert store.list_files(f"{LEASES}/job") == [f"{LEASES}/job/{2:012d}.json"]  # the dead generation removed
    rel, beat = holder.held["job"]
    holder.renew("job", rel, beat + 1)  # the stalled holder wakes up
    assert "job" in holder.lost
    assert not holder.acquire("job")  # and cannot take it back while the new holder lives
    holder.close()
    waiter.close()


def test_a_renewing_holder_is_never_taken_over(store):
    holder, waiter = Leases(store, ttl=0.6), Leases(store, ttl=0.6)
    assert holder.acquire("job")  # renews every 0.2 s
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert not waiter.acquire("job")
        time.sleep(0.1)
    holder.close()


def _race(uri: str, env: dict, barrier, wins, done) -> None:
    os.environ.update(env)
    leases = Leases(Store(uri), ttl=60)
    barrier.wait()
    if leases.acquire("contested"):
        wins.put(os.getpid())
    # Every racer stays alive until all have tried: a winner that exited would leave a lease whose holder is
    # dead on this host, which a late racer rightly takes over (a second, legitimate win).
    done.wait()


def test_sixteen_processes_racing_for_one_lease_one_wins(store):
    ctx = mp.get_context("fork")
    barrier, wins, done = ctx.Barrier(16), ctx.Queue(), ctx.Barrier(16)
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "KDBENCH_"))}
    procs = [ctx.Process(target=_race, args=(store.uri, env, barrier, wins, done)) for _ in range(16)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert wins.qsize() == 1


HOLD = """
import socket, sys, time
from kdbench.orchestrate.lease import Leases
from kdbench.store import Store
if sys.argv[2] != "here":
    socket.gethostname = lambda: sys.argv[2]
leases = Leases(Store(sys.argv[1]), ttl=float(sys.argv[3]))
assert leases.acquire("job")
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_a_sigkilled_holder_s_lease_is_taken_over(store, where):
    ttl = 2.0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, store.uri, where, str(ttl)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        waiter = Leases(store, ttl=ttl)
        assert not waiter.acquire("job")  # alive: it renews every ttl/3
        time.sleep(ttl)
        assert not waiter.acquire("job")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = time.monotonic()
    if where == "here":  # a holder on this machine whose process is gone: taken at once
        assert waiter.acquire("job")
    else:
        while not waiter.acquire("job"):  # on another machine: once unchanged for the TTL on the waiter's clock
            time.sleep(0.1)
            assert time.monotonic() - killed < 4 * ttl
        assert time.monotonic() - killed >= ttl / 2  # not before its last renewal is a TTL old
    waiter.close()


RACE = """\
name: race
dataset: {name: synthetic, n_train: 1000, n_val: 128, n_test: 256, dim: 16, num_classes: 4}
recipe: {epochs: 3, batch_size: 64, optimizer: {name: sgd, lr: 0.1}}
teachers:
  - {name: big, arch: mlp, widths: [64]}
  - {name: mid, arch: mlp, widths: [16]}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [none, kd]
chains:
  - [big, mid, small]
seeds: [0, 1]
"""


def _counts(out: str) -> dict[str, int]:
    import re

    line = next(x for x in out.splitlines() if x.startswith("jobs: "))
    found = dict((k, int(n)) for n, k in re.findall(r"(\d+) (total|cached|run|failed|done by another driver)", line))
    return {k: found.get(k, 0) for k in ("total", "cached", "run", "failed", "done by another driver")}


@pytest.mark.ray  # two `kdbench run` subprocesses, each with its own local Ray
@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_drivers_on_one_store_train_every_job_once(tmp_path, request, where):
    from kdbench.results import open_results
    from kdbench.suite import expand, load_suite

    from .test_faults import mlflow_runs_per_job

    path = write_suite(tmp_path, RACE)
    env: dict[str, str] = {}
    if where == "local":
        store, track = Store(tmp_path / "store"), ()
    else:  # on S3 the embedded MLflow cannot live in the store: untracked
        s3 = request.getfixturevalue("s3_server")
        store, track, env = Store(f"s3://{s3.bucket}/race-{uuid.uuid4().hex[:8]}"), ("--no-track",), s3.env()
    args = ("run", str(path), "--store", store.uri, "--num-cpus", "1", "-q", *track)
    first, second = kdbench(*args, logs=tmp_path / "a", env=env), kdbench(*args, logs=tmp_path / "b", env=env)
    (rc1, out1, err1), (rc2, out2, err2) = finish(first, 400), finish(second, 400)
    assert rc1 == 0 and rc2 == 0, (err1 + err2)[-4000:]
    a, b = _counts(out1), _counts(out2)
    total = len(expand(load_suite(str(path))))
    for c in (a, b):  # each driver's counts add up
        assert c["total"] == total and c["cached"] + c["run"] + c["done by another driver"] == total
    assert a["run"] + b["run"] == total  # every job trained by exactly one of them
    rows = open_results(store).to_arrow().to_pylist()
    assert len(rows) == total and all(r["status"] == "ok" and not r["restarts"] and r["attempt"] == 1 for r in rows)
    if where == "local":
        assert mlflow_runs_per_job(store, "race") == {r["job_id"]: 1 for r in rows}  # one MLflow run per job
    assert store.list_files(LEASES) == []  # every lease given back


def test_create_is_exclusive_on_a_filesystem_without_hard_links(tmp_path, monkeypatch):
    import errno

    def no_links(src, dst):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)  # as on some FUSE or SMB mounts
    store = Store(tmp_path / "s")
    assert store.create("leases/j/1.json", b"first") and not store.create("leases/j/1.json", b"second")
    assert store.read_bytes("leases/j/1.json") == b"first"
    assert os.listdir(tmp_path / "s" / "leases" / "j") == ["1.json"]  # no temp file left
