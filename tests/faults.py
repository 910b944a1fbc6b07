"""Helpers for fault tests: run `kdbench` as a real process, wait for progress, kill things."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from kdbench import checkpoint
from kdbench.store import Store


def kdbench(*args: str, logs: Path, env: dict | None = None) -> subprocess.Popen:
    """`kdbench ARGS` in its own session (so the test can clean up all it started), output to files
    (a pipe nobody reads while waiting would fill up and block the process)."""
    logs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "kdbench.cli", *args], stdout=open(logs / "out", "w"),
                            stderr=open(logs / "err", "w"), start_new_session=True,
                            env={**os.environ, **(env or {})})
    proc.logs = logs
    return proc


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.1)


def epochs_done(store: Store, job_id: str) -> int:
    """Epochs a job has checkpointed so far (0 if none, or while its checkpoint is being replaced)."""
    try:
        state = checkpoint.load(store, f"artifacts/{job_id}/last.pt")
    except Exception:
        return 0
    return 0 if state is None else state["epoch"]


def result_count(store: Store) -> int:
    return len(store.list_files("results", ".parquet"))


def session_processes(session: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) == session:
                out.append(p)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def ray_workers(session: int) -> list[psutil.Process]:
    """Ray worker processes running a trial (their title is 'ray::ImplicitFunc.train')."""
    found = []
    for p in session_processes(session):
        try:
            if " ".join(p.cmdline()).startswith("ray::ImplicitFunc"):
                found.append(p)
        except psutil.Error:
            continue
    return found


def kill_session(session: int, timeout: float = 30) -> None:
    """SIGKILL whatever a killed driver left behind (its local Ray), and wait until it is gone."""
    procs = session_processes(session)
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=timeout)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    """Wait for the process (then clean up its session); its exit status, stdout and stderr."""
    try:
        proc.wait(timeout=timeout)
    finally:
        kill_session(proc.pid)
    return proc.returncode, (proc.logs / "out").read_text(), (proc.logs / "err").read_text()
