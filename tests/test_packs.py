"""`resources.jobs_per_trial`: ready jobs that differ only in seed and teacher share one trial."""

from __future__ import annotations

import os

import pytest

from kdbench.jobs import JobFinal
from kdbench.orchestrate import RunOptions, run_suite
from kdbench.orchestrate.dag import JobGraph
from kdbench.orchestrate.groups import ReadyPacker, pack_key
from kdbench.results import open_results
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite
from .test_suite_e2e import child_runs

PACKED = TINY_SUITE.replace("name: tiny", "name: packed") + "resources: {cpus: 1, jobs_per_trial: 4}\n"


def test_the_packer_groups_ready_jobs_that_differ_only_in_seed_and_teacher(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, PACKED))))
    jobs = plan.jobs
    graph = JobGraph(jobs)
    packer = ReadyPacker(graph, jobs, 4)
    packs, finished = [], set()
    while not graph.finished:
        ids = packer.take()
        assert ids, "jobs are ready but nothing was handed out"
        packs.append(ids)
        for job_id in ids:
            graph.complete(job_id, True)
            finished.add(job_id)
    assert finished == set(jobs)  # every job handed out exactly once
    assert sum(map(len, packs)) == len(jobs)
    for ids in packs:
        assert len(ids) <= 4
        kinds = {jobs[i].kind for i in ids}
        if len(ids) > 1:
            assert kinds <= {"baseline", "student"} and len({pack_key(jobs[i]) for i in ids}) == 1
        if "teacher" in kinds:
            assert len(ids) == 1  # teachers always run alone
    # The two baselines (seeds 0 and 1) of `small` share a trial; so do kd students of one teacher.
    assert any(len(ids) > 1 and {jobs[i].kind for i in ids} == {"baseline"} for ids in packs)
    assert any(len(ids) > 1 and {jobs[i].method.name for i in ids} == {"kd"} for ids in packs)
    assert len(packs) < len(jobs)


def test_the_default_packs_by_estimated_duration(tmp_path):  # tests/test_autopack.py
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    assert plan.suite.resources.jobs_per_trial == "auto"


@pytest.mark.slow
def test_a_packed_suite_runs_every_job_in_fewer_trials_with_the_results_of_separate_runs(tmp_path, ray_local):
    packed, alone = Store(tmp_path / "packed"), Store(tmp_path / "alone")
    counts = run_suite(str(write_suite(tmp_path, PACKED, "packed.yaml")), RunOptions(store=packed.uri))
    plan = expand(load_suite(str(tmp_path / "packed.yaml")))
    assert (counts.total, counts.run, counts.failed) == (len(plan), len(plan), 0)
    rows = {r["job_id"]: r for r in open_results(packed).to_arrow().to_pylist()}
    assert set(rows) == set(plan.jobs) and {r["status"] for r in rows.values()} == {"ok"}
    trials = [d for d in os.listdir(packed.path("ray", "packed")) if d.startswith("job-")]
    assert len(trials) < len(plan)  # packs ran as single trials
    fused = [JobFinal.from_json(packed.read_bytes(f"artifacts/{i}/final.json")).counters.get("fused")
             for i in plan.jobs]
    assert max(f or 0 for f in fused) >= 2  # mlp students without batch norm were trained fused
    # Each packed job has its per-epoch metrics in MLflow, as a job run alone does.
    client, children, _ = child_runs(packed, "packed")
    assert len(children) == len(plan)
    for run in children:
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 3
    # The same suite, one job per trial: the same accuracies (fusing only reorders float sums).
    run_suite(str(write_suite(tmp_path, TINY_SUITE + "resources: {cpus: 1, jobs_per_trial: 1}\n", "alone.yaml")),
              RunOptions(store=alone.uri, track=False))
    other = {r["job_id"]: r for r in open_results(alone).to_arrow().to_pylist()}
    assert set(other) == set(rows)
    for job_id, row in rows.items():
        assert row["test_acc"] == pytest.approx(other[job_id]["test_acc"], abs=1 / 256 + 1e-9), job_id


def test_a_pack_whose_fused_training_fails_runs_its_jobs_one_by_one(tmp_path, caplog):
    """A method that breaks only under torch.vmap (tests/faulty_plugin.py): the pack falls back to training
    its jobs in turn, and the log says why, instead of failing every job (and Tune retrying it)."""
    import logging

    import tests.faulty_plugin  # noqa: F401  (registers test_fails_only_fused)
    from kdbench.engine import run_job
    from kdbench.engine.fused import fusable
    from kdbench.orchestrate.pack_trial import run_pack

    text = (TINY_SUITE.replace("methods: [none, kd]", "methods: [test_fails_only_fused]")
            + "plugins: [tests.faulty_plugin]\n")
    plan = expand(load_suite(str(write_suite(tmp_path, text))))
    store = Store(tmp_path / "store")
    run_job(next(e.job for e in plan.entries if e.job.kind == "teacher" and e.student == "big"), store)
    jobs = [e.job for e in plan.entries if e.job.kind == "student" and e.chain == ("big", "small")]
    assert len(jobs) == 2 and fusable(jobs) is None
    with caplog.at_level(logging.WARNING, logger="kdbench.orchestrate"):
        outcomes = run_pack(jobs, store, "cpu")
    assert all("final" in outcomes[j.job_id] for j in jobs), outcomes
    assert all("fused" not in outcomes[j.job_id]["final"] for j in jobs)  # trained one at a time
    assert "fused training failed: RuntimeError" in caplog.text and "boolean mask" in caplog.text
