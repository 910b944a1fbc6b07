"""Variational Student in the platform: the planner keeps `vs` to sparse students and single live teachers,
sparsity reaches the results, and the CI twin (benchmarks/suites/variational_digits.yaml) run through Ray Tune
shows a sparse distilled student (> 80% sparsity, > 90% accuracy) in the `sparsity` view."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from kdbench.suite import expand, load_suite
from kdbench.suite.compat import prune_incompatible

from .conftest import write_suite

ROOT = Path(__file__).resolve().parents[1]
TWIN = ROOT / "benchmarks" / "suites" / "variational_digits.yaml"

ENSEMBLE = """\
name: vs_pairs
dataset: {name: digits, train_fraction: 0.25}
recipe: {epochs: 1, batch_size: 64}
teachers:
  - {name: a, arch: mlp, widths: [16]}
  - {name: b, arch: mlp, widths: [20]}
ensembles:
  - {name: ab, members: [a, b]}
students:
  - {name: dense, arch: mlp, widths: [16]}
  - {name: sparse, arch: svd_mlp, widths: [16]}
methods: [vs]
teacher_cache: {enabled: true}
seeds: [0]
"""


def test_vs_is_planned_for_sparse_students_of_a_single_live_teacher(tmp_path):
    plan, pruned = prune_incompatible(expand(load_suite(str(write_suite(tmp_path, ENSEMBLE)))))
    reasons = {(p.entry.teacher, p.entry.student): p.reason for p in pruned}
    assert "variational_kl" in reasons[("a", "dense")]  # a dense student has no VD KL
    assert "single teacher" in reasons[("ab", "sparse")]  # an ensemble has no single network's weights
    assert "group_mismatch" in reasons[("b", "sparse")]  # 20 teacher groups, 16 student groups
    kept = [e for e in plan.entries if e.job.kind == "student"]
    assert {(e.teacher, e.student) for e in kept} == {("a", "sparse")}
    # `teacher_cache: true` caches logit-only students: vs reads the live teacher's weights, so never a cache
    assert all(not e.job.outputs for e in kept) and "teacher_outputs" not in plan.counts()


def test_jobs_of_a_sparse_model_report_its_sparsity_and_are_never_fused(tmp_path):
    import torch

    from kdbench.engine import run_job
    from kdbench.engine.fused import _model_reason
    from kdbench.engine.run import sparsity_counters
    from kdbench.jobs import Component, Job
    from kdbench.store import Store
    from kdbench.suite.schema import Recipe
    from kdbench.zoo.models import create_model

    torch.set_num_threads(1)
    data = Component("digits", {"train_fraction": 0.25})
    recipe = Recipe(epochs=1, batch_size=64).model_dump(mode="json")
    sparse = run_job(Job("baseline", data, Component("svd_mlp", {"widths": [16]}), recipe, Component("none", {}), 0),
                     Store(tmp_path))
    c = sparse.counters
    assert c["deployed_params"] == 64 * 16 + 16 + 16 * 10 + 10 and 0 < c["nonzero_params"] <= c["deployed_params"]
    assert c["sparsity"] == pytest.approx(1 - c["nonzero_params"] / c["deployed_params"])
    assert "compression" not in c  # no teacher to compare with
    dense = run_job(Job("baseline", data, Component("mlp", {"widths": [16]}), recipe, Component("none", {}), 0),
                    Store(tmp_path))
    assert "sparsity" not in dense.counters
    model = create_model("svd_mlp", {"widths": [16]}, (64,), 10)
    nonzero = model.sparsity_report()["nonzero_params"]
    assert sparsity_counters(model, 2000)["compression"] == pytest.approx(2000 / nonzero)
    assert "samples noise" in _model_reason(SimpleNamespace(model=model))  # the model is refused before the method


@pytest.mark.slow
def test_the_twin_runs_and_the_sparsity_view_shows_a_sparse_distilled_student(tmp_path, ray_local):
    from kdbench.orchestrate import RunOptions, run_suite
    from kdbench.results import open_results
    from kdbench.results.views import VIEWS
    from kdbench.results.views.plots import PLOTS
    from kdbench.store import Store

    store_uri = str(tmp_path / "store")
    counts = run_suite(str(TWIN), RunOptions(store=store_uri, track=False))
    assert counts.failed == 0 and counts.interrupted == 0, counts.summary()
    rows = open_results(tmp_path / "store").to_arrow().to_pylist()
    vs = [r for r in rows if r["method"] == "vs" and '"lambda_t":1.0' in r["method_params"].replace(" ", "")]
    assert len(vs) == 2  # two seeds
    for r in vs:
        c = dict(r["counters"])
        assert c["sparsity"] > 0.8 and r["test_acc"] > 0.9, (c, r["test_acc"])
        assert c["compression"] == pytest.approx(r["teacher_params"] / c["nonzero_params"])
    assert all("sparsity" not in dict(r["counters"] or {}) for r in rows if r["student_arch"] == "mlp")

    table = VIEWS["sparsity"](Store(store_uri), "variational_digits")
    cells = {(r["category"], r["model"], r["method"]): r for r in table.to_pylist()}
    assert set(cells) == {("teacher", "teacher", None), ("dense alone", "dense", None), ("dense distilled", "dense",
                          "kd"), ("VD net, no KL", "sparse", None), ("VD net, no KL", "sparse", "kd"),
                          ("sparse alone", "sparse", "vs"), ("sparse distilled", "sparse", "vs")}
    distilled = cells[("sparse distilled", "sparse", "vs")]
    assert distilled["n"] == 2 and distilled["ci_low"] is not None and distilled["compression_ci_low"] is not None
    assert distilled["compression"] == pytest.approx(sum(dict(r["counters"])["compression"] for r in vs) / 2)
    assert distilled["sparsity"] > 0.8 and distilled["mean"] > 0.9
    assert cells[("sparse alone", "sparse", "vs")]["sparsity"] > distilled["sparsity"] - 0.2
    dense_kd = cells[("dense distilled", "dense", "kd")]
    assert dense_kd["sparsity"] is None and dense_kd["compression"] == pytest.approx(1.0)  # same size as the teacher
    assert math.isclose(cells[("teacher", "teacher", None)]["compression"], 1.0)
    png = PLOTS["sparsity"](table)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
