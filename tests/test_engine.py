"""The engine trains, checkpoints every epoch, resumes exactly, and fails clearly."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from kdbench import checkpoint
from kdbench.engine import NonFiniteLoss, run_job
from kdbench.errors import CorruptArtifact, MissingUpstream
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite


@pytest.fixture
def plan(tmp_path):
    return expand(load_suite(str(write_suite(tmp_path, TINY_SUITE.replace("epochs: 3", "epochs: 4")))))


def weights(store, job_id):
    return checkpoint.load(store, f"artifacts/{job_id}/model.pt")["model"]


def test_a_teacher_and_a_distilled_student_train(plan, tmp_path):
    store = Store(tmp_path / "store")
    teacher, student = plan.entries[0], next(e for e in plan.entries if e.chain == ("big", "small"))
    epochs = []
    t = run_job(teacher.job, store, report=epochs.append)
    assert [m["epoch"] for m in epochs] == [1, 2, 3, 4]
    assert t["test_acc"] > 0.5 and t["teacher_agreement"] is None
    s = run_job(student.job, store)
    assert 0 <= s["teacher_agreement"] <= 1 and s["teacher_test_acc"] == pytest.approx(t["test_acc"])
    assert s["student_params"] == (8 * 4 + 4) + (4 * 4 + 4)  # Linear(8→4) + Linear(4→4)
    assert s["teacher_params"] == (8 * 64 + 64) + (64 * 4 + 4)


def test_training_is_deterministic_on_cpu(plan, tmp_path):
    a = run_job(plan.entries[0].job, Store(tmp_path / "a"))
    b = run_job(plan.entries[0].job, Store(tmp_path / "b"))
    assert a["test_acc"] == b["test_acc"] and a["final_train_loss"] == b["final_train_loss"]


class Interrupt(Exception):
    pass


def test_an_interrupted_job_resumes_from_its_last_epoch(plan, tmp_path):
    job = next(e for e in plan.entries if e.chain == ("mid",)).job
    whole = Store(tmp_path / "whole")
    run_job(job, whole)

    store = Store(tmp_path / "cut")

    def die_after_two(metrics):
        if metrics["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_job(job, store, report=die_after_two)
    assert not store.exists(f"artifacts/{job.job_id}/final.json")
    seen = []
    resumed = run_job(job, store, report=seen.append)
    assert [m["epoch"] for m in seen] == [3, 4]  # not from scratch
    assert resumed["restarts"] == [2]
    expected, got = weights(whole, job.job_id), weights(store, job.job_id)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert resumed["test_acc"] == run_job(job, whole)["test_acc"]


def test_a_finished_job_is_not_trained_again(plan, tmp_path):
    store = Store(tmp_path)
    first = run_job(plan.entries[0].job, store)
    seen = []
    assert run_job(plan.entries[0].job, store, report=seen.append) == first
    assert seen == []


def test_missing_teacher_weights_fail_clearly(plan, tmp_path):
    student = next(e for e in plan.entries if e.job.kind == "student")
    with pytest.raises(MissingUpstream, match="teacher weights of job"):
        run_job(student.job, Store(tmp_path))


def test_a_diverging_job_fails_with_non_finite_loss(tmp_path):
    # The largest learning rate a suite may give, with heavy momentum: the loss turns NaN within 3 epochs.
    text = TINY_SUITE.replace("lr: 0.1", "lr: 1000, momentum: 0.99")
    plan = expand(load_suite(str(write_suite(tmp_path, text))))
    with pytest.raises(NonFiniteLoss, match="non-finite training loss in epoch [123]"):
        run_job(plan.entries[0].job, Store(tmp_path / "s"))


def test_importing_the_engine_loads_neither_ray_nor_mlflow():
    code = ("import sys, kdbench, kdbench.engine, kdbench.teachers.load, kdbench.results; "
            "print(sorted(m for m in ('ray', 'mlflow', 'deepspeed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_trial_worker_imports_only_what_a_job_needs():
    """A Ray trial's worker imports the trainable (every worker start pays for it): not the driver's side
    (runner, results store, leaderboards' SciPy ~0.8 s, MLflow, DuckDB, matplotlib, Optuna)."""
    code = ("import sys, kdbench.orchestrate.trainable, kdbench.orchestrate.pack_trial; print(sorted(m for m in "
            "('scipy', 'mlflow', 'duckdb', 'matplotlib', 'optuna', 'kdbench.results', 'kdbench.orchestrate.runner')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_engine_runs_a_job_without_ray_mlflow_duckdb_optuna_or_deepspeed(tmp_path):
    # As on a GPU machine that has only PyTorch and the basics: those packages cannot be imported at all.
    suite = write_suite(tmp_path, TINY_SUITE)
    code = ("import sys\n"
            "for m in ('ray', 'mlflow', 'duckdb', 'optuna', 'deepspeed', 'matplotlib'): sys.modules[m] = None\n"
            "import kdbench\nfrom kdbench.engine import run_job\nfrom kdbench.suite import expand, load_suite\n"
            "from kdbench.store import Store\n"
            f"job = expand(load_suite({str(suite)!r})).entries[0].job\n"
            f"print(run_job(job, Store({str(tmp_path / 's')!r}))['test_acc'] > 0, kdbench.__version__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "True"


def test_a_corrupt_checkpoint_is_never_loaded(plan, tmp_path):
    job = plan.entries[0].job
    store = Store(tmp_path)

    def die_after_two(metrics):
        if metrics["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_job(job, store, report=die_after_two)
    rel = f"artifacts/{job.job_id}/last.pt"
    data = bytearray(store.read_bytes(rel))
    data[-10] ^= 0xFF  # one flipped byte in the payload
    store.write_bytes(rel, bytes(data))
    with pytest.raises(CorruptArtifact, match="does not match the hash"):
        checkpoint.load(store, rel)
    seen = []
    final = run_job(job, store, report=seen.append)
    assert [m["epoch"] for m in seen] == [1, 2, 3, 4] and final["restarts"] == []  # from scratch
    store.write_bytes(rel, store.read_bytes(rel)[:100])  # truncated
    assert not checkpoint.is_intact(store, rel)


def test_checkpoints_refuse_pickled_code(tmp_path):
    import hashlib
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"model": Evil()})
    store = Store(tmp_path)
    store.write_bytes("x.pt", checkpoint.MAGIC + hashlib.sha256(payload).digest() + payload)
    with pytest.raises(Exception, match="Weights only load failed"):
        checkpoint.load(store, "x.pt")
    assert not marker.exists()
