"""SIGTERM stops `kdbench run` as Ctrl-C does (one line, exit 130, finished jobs kept), not with a stack dump;
the local Ray keeps its session files inside a folder only its user may enter."""

from __future__ import annotations

import os
import signal
import stat
import time

import pytest

from kdbench.results import open_results
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import write_suite
from .faults import finish, kdbench, result_count, wait_for

SUITE = """\
name: termed
dataset: {name: synthetic, n_train: 3000, n_val: 200, n_test: 200, dim: 32, num_classes: 5}
recipe: {epochs: 8, batch_size: 64}
teachers: [{name: big, arch: mlp, widths: [256]}]
students: [{name: s8, arch: mlp, widths: [8]}, {name: s4, arch: mlp, widths: [4]}]
methods: [kd]
seeds: [0, 1]
"""


@pytest.mark.ray  # `kdbench run` in a subprocess, terminated, then run again
def test_sigterm_stops_a_run_like_ctrl_c_and_the_rerun_finishes(tmp_path):
    path = write_suite(tmp_path, SUITE)
    store = Store(tmp_path / "store")
    started = time.time()
    args = ("run", str(path), "--store", store.uri, "--num-cpus", "1", "-q", "--no-track")
    proc = kdbench(*args, logs=tmp_path / "first")
    try:
        wait_for(lambda: result_count(store) >= 1, 240, "a finished job")
        os.kill(proc.pid, signal.SIGTERM)  # the driver alone, as `kill` or a batch scheduler sends it
    finally:
        rc, out, err = finish(proc)
    assert rc == 130 and "interrupted" in err, err[-3000:]
    assert "Fatal Python error" not in err and "Stack (most recent call first)" not in err
    kept = {r["job_id"] for r in open_results(store).to_arrow().to_pylist()}
    assert kept and all(r["status"] == "ok" for r in open_results(store).to_arrow().to_pylist())

    base = f"/tmp/kdbench-{os.getuid()}"  # the local Ray's sessions: only this user may enter
    info = os.stat(base)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    ours = [d for d in os.listdir(f"{base}/ray") if d.startswith("session_2")
            and os.stat(f"{base}/ray/{d}").st_mtime >= started - 1]
    assert ours  # this run's session (its logs, the workers' environments) is in there, not in /tmp/ray

    rc, out, err = finish(kdbench(*args, logs=tmp_path / "again"))
    assert rc == 0, err[-3000:]
    rows = open_results(store).to_arrow().to_pylist()
    assert len(rows) == len(expand(load_suite(str(path)))) and all(r["status"] == "ok" for r in rows)
    assert {r["job_id"]: r for r in rows}.keys() >= kept
