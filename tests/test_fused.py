"""Fused training (N jobs as one vmapped model) gives each job the result of its separate run."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from kdbench import checkpoint
from kdbench.engine import run_job
from kdbench.engine.fused import fusable, train_fused
from kdbench.jobs import Component
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import write_suite

SUITE = """\
name: fused
dataset: {name: synthetic, n_train: 300, n_val: 100, n_test: 200, dim: 12, num_classes: 5}
recipe:
  epochs: 3
  batch_size: 64
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.0005, nesterov: true}
teachers:
  - {name: big, arch: mlp, widths: [64, 64]}
students:
  - {name: small, arch: mlp, widths: [16]}
methods: [none, {kd: {temperature: 4, alpha: 0.9}}]
seeds: [0, 1, 2]
"""


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return expand(load_suite(str(write_suite(tmp_path_factory.mktemp("suite"), SUITE))))


def _weights(store: Store, job_id: str) -> dict[str, torch.Tensor]:
    return checkpoint.load(store, f"artifacts/{job_id}/model.pt")["model"]


def _same_results(jobs, fused_store, fused, separate_store, rtol=1e-5, atol=1e-6):
    for job, got in zip(jobs, fused, strict=True):
        want = run_job(job, separate_store)
        assert got["fused"] == len(jobs)
        assert got["test_acc"] == want["test_acc"] and got["val_acc"] == want["val_acc"]
        assert got["selected_epoch"] == want["selected_epoch"]
        assert got["final_train_loss"] == pytest.approx(want["final_train_loss"], rel=1e-5)
        a, b = _weights(fused_store, job.job_id), _weights(separate_store, job.job_id)
        for name in b:
            torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol)


def test_fused_baselines_equal_separate_runs(plan, tmp_path):
    jobs = [e.job for e in plan.entries if e.job.kind == "baseline"]
    assert len(jobs) == 3 and fusable(jobs) is None
    store = Store(tmp_path / "fused")
    _same_results(jobs, store, train_fused(jobs, store), Store(tmp_path / "separate"))


def test_fused_kd_students_equal_separate_runs(plan, tmp_path):
    teacher = next(e.job for e in plan.entries if e.job.kind == "teacher")
    fused_store, separate_store = Store(tmp_path / "fused"), Store(tmp_path / "separate")
    run_job(teacher, fused_store)
    shutil.copytree(fused_store.path("artifacts"), separate_store.path("artifacts"))
    jobs = [e.job for e in plan.entries if e.job.method.name == "kd"]
    assert len(jobs) == 3 and len({j.seed for j in jobs}) == 3
    _same_results(jobs, fused_store, train_fused(jobs, fused_store), separate_store)


@pytest.mark.parametrize("name", ["dkd", "dist"])
def test_every_logit_method_trains_fused_with_the_results_of_separate_runs(plan, tmp_path, name):
    """DKD once indexed with a boolean mask, which torch.vmap refuses: its packs failed (and were retried)."""
    teacher = next(e.job for e in plan.entries if e.job.kind == "teacher")
    fused_store, separate_store = Store(tmp_path / "fused"), Store(tmp_path / "separate")
    run_job(teacher, fused_store)
    shutil.copytree(fused_store.path("artifacts"), separate_store.path("artifacts"))
    jobs = [dataclasses.replace(e.job, method=Component(name, {})) for e in plan.entries if e.job.method.name == "kd"]
    assert len(jobs) == 3 and fusable(jobs) is None
    # DIST's relations reduce over the batch: the batched kernels reassociate them (~5e-6 in the weights).
    _same_results(jobs, fused_store, train_fused(jobs, fused_store), separate_store, rtol=1e-4, atol=1e-5)


def test_what_cannot_be_fused_is_refused_with_the_reason(plan, tmp_path):
    baseline = next(e.job for e in plan.entries if e.job.kind == "baseline")
    student = next(e.job for e in plan.entries if e.job.kind == "student")
    assert "differ in kind" in fusable([baseline, student])
    kd_t2 = [student, dataclasses.replace(student, method=Component("kd", {**student.method.params,
                                                                         "temperature": 2.0}))]
    assert "differ in method" in fusable(kd_t2)
    assert "teacher jobs" in fusable([e.job for e in plan.entries if e.job.kind == "teacher"])
    crd = [dataclasses.replace(student, method=Component("crd", {}), seed=s) for s in (0, 1)]
    assert "declares fusable = False" in fusable(crd)
    dropout = expand(load_suite(str(write_suite(tmp_path, SUITE.replace(
        "{name: small, arch: mlp, widths: [16]}", "{name: small, arch: mlp, widths: [16], dropout: 0.1}")))))
    jobs = [e.job for e in dropout.entries if e.job.kind == "baseline"]
    with pytest.raises(ValueError, match="dropout"):
        train_fused(jobs, Store(tmp_path / "dropout"))


def test_fused_batch_norm_models_equal_separate_runs(tmp_path):
    # resnet8: batch norm everywhere; its running statistics are stacked and updated per model. One epoch:
    # on 300 digits, float reassociation grows to ~1e-3 in the weights by the second (seed-dependent).
    text = SUITE.replace("dataset: {name: synthetic, n_train: 300, n_val: 100, n_test: 200, dim: 12, num_classes: 5}",
                         "dataset: {name: digits, train_fraction: 0.3}").replace(
        "{name: small, arch: mlp, widths: [16]}", "{name: small, arch: resnet8}").replace("epochs: 3", "epochs: 1")
    plan = expand(load_suite(str(write_suite(tmp_path, text))))
    jobs = [e.job for e in plan.entries if e.job.kind == "baseline"]
    store = Store(tmp_path / "fused")
    _same_results(jobs, store, train_fused(jobs, store), Store(tmp_path / "separate"))
