"""`resources.jobs_per_trial: auto` (the default): packs sized from estimated durations that measured times correct."""

from __future__ import annotations

import os

import pytest

from kdbench.orchestrate import RunOptions, run_suite
from kdbench.orchestrate import state as state_module
from kdbench.orchestrate.dag import JobGraph
from kdbench.orchestrate.durations import Durations
from kdbench.orchestrate.groups import PACK_MAX_S, SHORT_S, ReadyPacker, auto_pack_size, pack_key
from kdbench.orchestrate.state import SuiteRun, _described
from kdbench.results import open_results
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite

# 16 baseline jobs that differ only in seed, as in P1 (benchmarks/perf/p1): ≈5 s each on one core.
SHORT = """\
name: short
dataset: {{name: synthetic, n_train: 8000, n_val: 100, n_test: 100, dim: 20, num_classes: 10}}
recipe: {{epochs: {epochs}, batch_size: 64}}
teachers: []
students: [{{name: mlp-64, arch: mlp, widths: [64]}}]
methods: [none]
seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
{resources}"""


def plan_of(tmp_path, epochs=80, resources="", name="suite.yaml"):
    return expand(load_suite(str(write_suite(tmp_path, SHORT.format(epochs=epochs, resources=resources), name))))


def durations(plan) -> Durations:
    return Durations(_described(plan), plan.suite.resources.cpus, plan.suite.resources.gpus, pack_key)


def drain(packer: ReadyPacker, graph: JobGraph) -> list[int]:
    sizes = []
    while ids := packer.take():
        sizes.append(len(ids))
        for job_id in ids:
            graph.complete(job_id, True)
    assert graph.finished
    return sizes


def test_the_prior_is_the_documented_formula(tmp_path):
    job = plan_of(tmp_path).entries[0].job
    # mlp [64] on 20 features, 10 classes: two matrix products of 2 FLOPs per multiply-add, ×3 for training;
    # 125 steps of 64 samples per epoch at 0.5 ms each; 10 GFLOP/s per CPU.
    flops = 3 * 2 * (20 * 64 + 64 * 10)
    expected = 80 * (125 * 0.5e-3 + 8000 * flops / 10e9)
    assert durations(plan_of(tmp_path)).prior(job) == pytest.approx(expected)  # 5.74 s
    gpu = Durations(_described(plan_of(tmp_path)), 1, 0.5, pack_key)  # a GPU trial: the device's throughput
    assert gpu.prior(job) == pytest.approx(80 * (125 * 0.5e-3 + 8000 * flops / (0.5 * 25e12)))


def test_the_decision_packs_short_jobs_up_to_the_bound_and_a_long_job_alone():
    assert auto_pack_size([5.0] * 20, 20, 1) == int(PACK_MAX_S // 5)  # 12 jobs: 60 s estimated
    assert auto_pack_size([5.0] * 16, 16, 2) == 8  # no fewer packs than slots: 2 of 8
    assert auto_pack_size([SHORT_S + 1, 1.0, 1.0], 3, 1) == 1  # a long job runs alone
    assert auto_pack_size([1.0, SHORT_S + 1, 1.0], 3, 1) == 1  # and joins no pack
    assert auto_pack_size([None, 1.0], 2, 1) == 1  # unknown: alone
    assert auto_pack_size([0.01] * 6, 6, 6) == 6  # far below the fixed cost: one trial, slots or not
    assert auto_pack_size([2.0] * 8, 8, 4) == 2  # 4 s fills a trial: spread over the 4 slots
    assert auto_pack_size([25.0, 25.0, 25.0], 3, 1) == 2  # 50 s ≤ 60 s; a third would pass the bound
    assert auto_pack_size([0.001] * 1000, 1000, 1) == 256  # never more than an explicit count may ask


def test_the_default_packs_short_jobs_into_as_many_packs_as_slots(tmp_path):
    plan = plan_of(tmp_path)
    assert plan.suite.resources.jobs_per_trial == "auto"
    graph = JobGraph(plan.jobs)
    assert drain(ReadyPacker(graph, plan.jobs, None, durations(plan), lambda: 2), graph) == [8, 8]
    graph = JobGraph(plan.jobs)  # one slot: packs bounded by their estimated duration (10 × 5.74 s ≤ 60 s)
    assert drain(ReadyPacker(graph, plan.jobs, None, durations(plan), lambda: 1), graph) == [10, 6]
    long = plan_of(tmp_path, epochs=800, name="long.yaml")  # 57 s each: never packed
    graph = JobGraph(long.jobs)
    assert drain(ReadyPacker(graph, long.jobs, None, durations(long), lambda: 1), graph) == [1] * 16


def test_an_explicit_integer_packs_as_before_and_one_never_packs(tmp_path):
    plan = plan_of(tmp_path, epochs=800, resources="resources: {jobs_per_trial: 3}\n")  # long jobs, packed anyway
    graph = JobGraph(plan.jobs)
    assert drain(ReadyPacker(graph, plan.jobs, 3), graph) == [3, 3, 3, 3, 3, 1]
    run = SuiteRun(plan, Store(tmp_path / "s"), set(), config=lambda e: {"job_id": e.job_id})
    assert run.packer.size == 3 and run.durations is None
    one = plan_of(tmp_path, resources="resources: {jobs_per_trial: 1}\n", name="one.yaml")
    run = SuiteRun(one, Store(tmp_path / "s1"), set(), config=lambda e: {"job_id": e.job_id})
    assert run.packer is None and "jobs" not in run.next_config()


def test_jobs_per_trial_is_not_part_of_a_jobs_identity(tmp_path):
    ids = [list(plan_of(tmp_path, resources=r, name=f"{i}.yaml").jobs) for i, r in enumerate(
        ["", "resources: {jobs_per_trial: auto}\n", "resources: {jobs_per_trial: 1}\n",
         "resources: {jobs_per_trial: 8}\n"])]
    assert ids[0] == ids[1] == ids[2] == ids[3]


def test_measured_times_change_later_packs(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(state_module.time, "monotonic", lambda: clock[0])
    plan = plan_of(tmp_path, epochs=800)  # estimated 57 s a job: alone
    run = SuiteRun(plan, Store(tmp_path / "s"), set(), config=lambda e: {"job": e.job_id})
    first = run.next_config()
    assert "jobs" not in first
    run.started(first["job"])
    run.epoch(first["job"], {"epoch_seconds": 0.01, "train_loss": 1.0}, 1)  # measured: 800 × 0.01 s = 8 s a job
    packed = run.next_config()
    assert len(packed["jobs"]) == int(PACK_MAX_S // 8)  # 7 jobs of 8 s
    clock[0] = 180.0  # the first job ends: 80 s in all, which replaces its epoch's measure
    run.finished(first["job"], {"task": "classification", "metrics": {"test_acc": 0.5}}, None)
    assert run.durations.seconds(plan.jobs[first["job"]]) == pytest.approx(80.0)
    assert "jobs" not in run.next_config()  # long again: alone
    for job_id in packed["jobs"]:  # a pack of 7 that took 14 s: 2 s a job, measured in the driver
        run.started(job_id, 7)
    clock[0] = 194.0
    for job_id in packed["jobs"]:
        run.finished(job_id, {"task": "classification", "metrics": {"test_acc": 0.5}}, None)
    # 8 jobs measured, 80 + 7 × 2 s against 8 × 57.4 s of prior: ≈ 11.75 s a job
    assert run.durations.seconds(plan.jobs[first["job"]]) == pytest.approx(94 / 8, rel=1e-6)
    assert len(run.next_config()["jobs"]) == 5  # 5 × 11.75 s ≤ 60 s < 6 × 11.75 s


def test_teachers_are_not_measured_for_the_students(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    times = durations(plan)
    teacher = next(e.job for e in plan.entries if e.job.kind == "teacher")
    baseline = next(e.job for e in plan.entries if e.job.kind == "baseline")
    prior = times.seconds(baseline)
    times.finished(teacher, 1000.0)
    assert times.seconds(baseline) == prior  # still the formula: nothing like it was measured
    times.finished(baseline, 10 * prior)
    assert times.seconds(baseline) == pytest.approx(10 * prior)


@pytest.mark.slow
@pytest.mark.ray
def test_the_default_packs_the_tiny_suite(tmp_path, ray_local):
    store = Store(tmp_path / "store")
    counts = run_suite(str(write_suite(tmp_path, TINY_SUITE)), RunOptions(store=store.uri, track=False))
    plan = expand(load_suite(str(tmp_path / "suite.yaml")))
    assert (counts.total, counts.run, counts.failed) == (len(plan), len(plan), 0)
    rows = open_results(store).to_arrow().to_pylist()
    assert {r["job_id"] for r in rows} == set(plan.jobs) and {r["status"] for r in rows} == {"ok"}
    trials = {d.removeprefix("job-") for d in os.listdir(store.path("ray", "tiny")) if d.startswith("job-")}
    # Which students are ready together depends on when their teachers end, but the two baselines (seeds 0 and 1,
    # ready from the start, estimated milliseconds) always share one trial, named for the first of them.
    baselines = [e.job_id for e in plan.entries if e.job.kind == "baseline"]
    assert len(baselines) == 2 and len(trials & set(baselines)) == 1
    assert all(e.job_id in trials for e in plan.entries if e.job.kind == "teacher")  # teachers run alone
    assert len(trials) < len(plan)


@pytest.mark.parametrize("value", ["fast", "0", "257", "true", "2.5"])
def test_jobs_per_trial_is_auto_or_a_count_else_one_line_naming_the_field(tmp_path, value):
    path = write_suite(tmp_path, SHORT.format(epochs=1, resources=f"resources: {{jobs_per_trial: {value}}}\n"))
    with pytest.raises(Exception, match=r"suite\.yaml:8: resources\.jobs_per_trial: must be auto or a whole number "
                                        r"from 1 to 256") as e:
        load_suite(str(path))
    assert "\n" not in str(e.value)
