"""A damaged store, through the real CLI, on a local disk and on S3 (moto): truncated, empty and garbage result
files, segments and plans are skipped by readers (one line) and quarantined by `kdbench run`, which
re-records their jobs; a job's rows are ordered by their attempt counter, not by a clock that may run
ahead; a full disk ends in one line and leaves no temp file."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid

import pytest

from kdbench.results import read_plan, read_results, result_row, write_plan, write_result
from kdbench.results.compact import compact
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import ROOT, TINY_SUITE, write_suite
from .faults import finish, kdbench


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """(a fresh store, the environment a kdbench process needs to reach it)."""
    if request.param == "local":
        return Store(tmp_path / "store"), {}
    s3 = request.getfixturevalue("s3_server")
    return Store(f"s3://{s3.bucket}/faults-{uuid.uuid4().hex[:8]}"), s3.env()


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdbench.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT)]),
                               **(env or {})})


def filled(store: Store, tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    write_plan(store, plan)
    for i, e in enumerate(plan.entries):
        write_result(store, result_row(e, "tiny", {"test_acc": 0.5 + 0.01 * i, "val_acc": 0.5}, attempt=1))
    return plan


def damage(store: Store, rel: str, how: str) -> None:
    data = store.read_bytes(rel)
    store.write_bytes(rel, {"truncated": data[: len(data) // 2], "empty": b"",
                            "garbage": os.urandom(len(data))}[how])


def test_unreadable_result_files_are_skipped_and_reported_in_one_line(where, tmp_path):
    store, env = where
    plan = filled(store, tmp_path)
    students = sorted(e.job_id for e in plan.entries if e.job.kind == "student")
    for job, how in zip(students, ["truncated", "empty", "garbage"], strict=False):
        damage(store, f"results/{job[:2]}/{job}.parquet", how)
    q = cli("query", "select count(*) as n from results", "--store", store.uri, "--format", "csv", env=env)
    assert q.returncode == 0, q.stderr[-3000:]
    assert q.stdout.splitlines() == ["n", str(len(plan) - 3)]  # every other row still there
    [line] = [x for x in q.stderr.splitlines() if "unreadable" in x]
    assert "skipped 3 unreadable file(s)" in line and "Traceback" not in q.stderr
    lb = cli("leaderboard", "tiny", "--store", store.uri, env=env)
    assert lb.returncode == 0 and "Methods on synthetic" in lb.stdout, lb.stderr[-3000:]
    assert "skipped 3 unreadable file(s)" in lb.stderr and "ArrowInvalid" not in lb.stderr
    assert "pending)" in lb.stdout  # their cells show the missing rows as pending, not as fewer seeds alone


def test_a_truncated_segment_hides_only_its_own_rows(where, tmp_path):
    store, env = where
    plan = filled(store, tmp_path)
    compact(store)
    [segment] = store.list_files("results/segments")
    write_result(store, result_row(plan.entries[0], "tiny", {"test_acc": 0.9}, attempt=2))  # a later loose row
    damage(store, segment, "truncated")
    q = cli("query", "select job_id, test_acc from results", "--store", store.uri, "--format", "csv", env=env)
    assert q.returncode == 0, q.stderr[-3000:]
    assert q.stdout.splitlines()[1:] == [f"{plan.entries[0].job_id},0.9"]
    assert "skipped 1 unreadable file(s)" in q.stderr and segment in q.stderr


def test_a_damaged_plan_is_not_trusted_by_its_name(where, tmp_path):
    store, _ = where
    plan = filled(store, tmp_path)
    [first] = store.list_files("plans", ".parquet")
    damage(store, first, "truncated")
    bad: dict[str, str] = {}
    assert read_plan(store, "tiny", unreadable=bad).num_rows == 0 and list(bad) == [first]
    again = write_plan(store, plan)  # same digest in the name, but the file does not hold the plan: written anew
    assert again != first and sorted(read_plan(store, "tiny")["job_id"].to_pylist()) == sorted(plan.jobs)
    assert write_plan(store, plan) == again  # a verified plan is not written twice


SMALL = """\
name: small
dataset: {name: synthetic, n_train: 256, n_val: 64, n_test: 128, dim: 8, num_classes: 3}
recipe: {epochs: 2, batch_size: 64}
teachers: [{name: big, arch: mlp, widths: [32]}]
students: [{name: small, arch: mlp, widths: [4]}]
methods: [kd]
seeds: [0]
"""


@pytest.mark.ray  # `kdbench run` in a subprocess, twice
def test_run_quarantines_unreadable_files_and_records_their_jobs_again(where, tmp_path):
    store, env = where
    path = write_suite(tmp_path, SMALL)
    args = ("run", str(path), "--store", store.uri, "--num-cpus", "1", "-q", "--no-track")
    rc, out, err = finish(kdbench(*args, logs=tmp_path / "first", env=env), 300)
    assert rc == 0, err[-3000:]
    before = {r["job_id"]: r for r in read_results(store).to_pylist()}
    compact(store)
    [segment] = store.list_files("results/segments")
    damage(store, segment, "truncated")  # every row of the suite is in it
    [plan_file] = store.list_files("plans", ".parquet")
    damage(store, plan_file, "garbage")
    rc, out, err = finish(kdbench(*args, logs=tmp_path / "again", env=env), 300)
    assert rc == 0 and "Traceback" not in err, err[-3000:]
    assert f"jobs: {len(before)} total, 0 cached, {len(before)} run, 0 failed" in out
    moved = store.list_files("quarantine")
    assert sorted(m.rsplit(".", 1)[0] for m in moved) == sorted([f"quarantine/{segment}", f"quarantine/{plan_file}"])
    after = {r["job_id"]: r for r in read_results(store).to_pylist()}
    assert sorted(after) == sorted(before) and all(r["status"] == "ok" for r in after.values())
    for job, row in after.items():  # recorded again from the job's final report, not trained again
        assert row["wall_seconds"] == before[job]["wall_seconds"]
    assert sorted(read_plan(store, "small")["job_id"].to_pylist()) == sorted(before)


CLOCK_AHEAD = """
import datetime as dt, sys
import kdbench.results.rows as rows

class Ahead(dt.datetime):  # this machine's clock runs a year ahead
    @classmethod
    def now(cls, tz=None):
        return dt.datetime.now(tz) + dt.timedelta(days=365)

rows.dt = type("m", (), {"datetime": Ahead, "UTC": dt.UTC})
from kdbench.cli import app
sys.argv = ["kdbench", *sys.argv[1:]]
app()
"""


@pytest.mark.ray  # `kdbench run` in a subprocess, twice
def test_a_row_written_by_a_clock_running_ahead_does_not_beat_a_later_row(tmp_path):
    path = write_suite(tmp_path, SMALL.replace("methods: [kd]", "methods: [kd]\nretries: 0"))
    store = Store(tmp_path / "store")
    args = ("run", str(path), "--store", store.uri, "--num-cpus", "1", "-q", "--no-track")
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT)])}
    ahead = subprocess.run([sys.executable, "-c", CLOCK_AHEAD, *args], capture_output=True, text=True, timeout=300,
                           env={**os.environ, **env})
    assert ahead.returncode == 0, ahead.stderr[-3000:]
    rows = read_results(store).to_pylist()
    assert all(r["finished_at"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=300) for r in rows)
    student = next(r for r in rows if r["kind"] == "student")
    # The fast machine's student row is compacted away; then that job is failed and rerun on a normal clock.
    write_result(store, {**student, "status": "failed", "error": "lost", "attempt": 2})
    compact(store)
    rc, out, err = finish(kdbench(*args, logs=tmp_path / "normal"), 300)
    assert rc == 0 and "1 run" in out, err[-3000:]
    now = {r["job_id"]: r for r in read_results(store).to_pylist()}
    assert now[student["job_id"]]["status"] == "ok" and now[student["job_id"]]["attempt"] == 3
    assert now[student["job_id"]]["finished_at"] < student["finished_at"]  # the later row won despite its clock
    compact(store, full=True)  # and compaction keeps that one
    assert read_results(store, [student["job_id"]]).to_pylist()[0]["attempt"] == 3


FULL_SUITE = """\
name: full
dataset: {name: synthetic, n_train: 256, n_val: 64, n_test: 128, dim: 64, num_classes: 3}
recipe: {epochs: 2, batch_size: 64}
teachers: [{name: big, arch: mlp, widths: [256, 256]}]
students: [{name: small, arch: mlp, widths: [4]}]
methods: [kd]
seeds: [0]
"""

ENOSPC_AFTER_4K = """
import builtins, errno, os, sys
real_open = open
def full_open(path, mode="r", *a, **k):  # files in the store fill the disk once 4 KiB are written
    f = real_open(path, mode, *a, **k)
    if "w" in mode and "/.tmp-" in str(path):
        write = f.write
        def limited(data):
            if f.tell() + len(data) > 4096:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(data)
        f.write = limited
    return f
builtins.open = full_open
from kdbench.cli import app
sys.argv = ["kdbench", *sys.argv[1:]]
app()
"""


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root may mount one here); None where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        yield None
        return
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.ray  # `kdbench run` in a subprocess, its store on a 1 MiB filesystem
def test_a_full_disk_ends_in_one_line_and_leaves_no_temp_file(tmp_path, small_disk):
    """The teacher's first checkpoint (~1.3 MB) does not fit: its worker's write fails with ENOSPC and the
    driver stops the suite. Without the right to mount a filesystem, ENOSPC is injected into the
    driver's own writes instead (a simulation: then the plan's write is the one that fails)."""
    path = write_suite(tmp_path, FULL_SUITE)
    root = small_disk if small_disk is not None else tmp_path
    store = Store(root / "store")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT)])}
    args = ["run", str(path), "--store", store.uri, "--num-cpus", "1", "-q", "--no-track"]
    cmd = [sys.executable, "-m", "kdbench.cli", *args] if small_disk is not None else \
        [sys.executable, "-c", ENOSPC_AFTER_4K, *args]
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert got.returncode == 2, got.stderr[-3000:]
    lines = got.stderr.strip().splitlines()
    assert lines[-1].startswith("error: the store ") and "is full (No space left on device)" in lines[-1]
    assert "Traceback" not in got.stderr and "TuneError" not in got.stderr, got.stderr[-3000:]
    assert not list(root.rglob(".tmp-*"))
