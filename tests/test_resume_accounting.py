"""A resumed job's `wall_seconds` is the sum of its attempts (each up to its last checkpoint), not the last
attempt's alone."""

from __future__ import annotations

import time

import pytest

from kdbench.engine import run_job
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite


class Interrupt(Exception):
    pass


def test_wall_seconds_after_a_resume_count_every_attempt(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE.replace("epochs: 3", "epochs: 4")))))
    job = next(e for e in plan.entries if e.chain == ("mid",)).job
    store = Store(tmp_path / "s")

    def slow_then_killed(metrics):
        if metrics["epoch"] == 1:
            time.sleep(2.0)  # inside the first attempt, before epoch 2's checkpoint
        if metrics["epoch"] == 2:
            raise Interrupt  # killed after epoch 2's checkpoint

    with pytest.raises(Interrupt):
        run_job(job, store, report=slow_then_killed)
    start = time.perf_counter()
    resumed = run_job(job, store)
    last_attempt = time.perf_counter() - start
    assert resumed["restarts"] == [2]
    assert resumed["wall_seconds"] >= 2.0 + 0.9 * last_attempt  # the first attempt's time is in it
