"""Plan expansion: which jobs a suite means, their DAG order, and content-addressed ids."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from kdbench.suite import expand, load_suite
from kdbench.version import JOB_SEMANTICS

from .conftest import TINY_SUITE, write_suite


def plan_of(tmp_path, text=TINY_SUITE, name="suite.yaml"):
    return expand(load_suite(str(write_suite(tmp_path, text, name))))


def test_expansion_counts_and_roles(tmp_path):
    plan = plan_of(tmp_path)
    # 2 teachers; 1 student × 2 seeds baselines; (big, mid, both) × small × kd × 2 seeds;
    # chain big → mid → small: kd(big→mid) and kd(that→small) per seed.
    assert plan.counts() == {"teacher": 2, "baseline": 2, "student": 6 + 4}
    chains = sorted({e.chain for e in plan.entries})
    assert chains == [("big",), ("big", "mid"), ("big", "mid", "small"), ("big", "small"), ("both", "small"),
                      ("mid",), ("mid", "small"), ("small",)]


def test_upstream_jobs_come_first_and_chains_link(tmp_path):
    plan = plan_of(tmp_path)
    position = {e.job_id: i for i, e in enumerate(plan.entries)}
    for e in plan.entries:
        for t in e.job.teachers:
            assert position[t.job_id] < position[e.job_id]
    final = [e for e in plan.entries if e.chain == ("big", "mid", "small")]
    ta = {e.job_id: e for e in plan.entries if e.chain == ("big", "mid")}
    assert all(e.job.teachers[0].job_id in ta for e in final)
    ens = [e for e in plan.entries if e.chain == ("both", "small")]
    assert all(len(e.job.teachers) == 2 and e.job.combine == "geometric" for e in ens)


def test_teacher_id_is_the_hash_of_its_canonical_identity(tmp_path):
    plan = plan_of(tmp_path)
    teacher = plan.entries[0].job
    identity = {  # written out by hand: what determines a teacher's result
        "combine": None,
        "dataset": {"name": "synthetic", "params": {"data_seed": 0, "dim": 8, "hidden": 64, "label_noise": 0.0,
                                                    "n_test": 256, "n_train": 256, "n_val": 128,
                                                    "num_classes": 4}},
        "kind": "teacher",
        "method": {"name": "none", "params": {}},
        "model": {"name": "mlp", "params": {"dropout": 0.0, "widths": [64]}},
        "recipe": {"batch_size": 64, "epochs": 3,
                   "optimizer": {"lr": 0.1, "momentum": 0.9, "name": "sgd", "nesterov": False,
                                 "weight_decay": 0.0005},
                   "schedule": {"gamma": 0.1, "milestones": [], "name": "cosine", "warmup_epochs": 0},
                   "select": "best_val"},
        "seed": 0,
        "semantics": JOB_SEMANTICS,
        "stop_epoch": None,
        "upstream": [],
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    assert teacher.job_id == hashlib.sha256(text.encode()).hexdigest()[:20]


def test_ids_are_stable_across_processes(tmp_path):
    path = write_suite(tmp_path, TINY_SUITE)
    here = [e.job_id for e in expand(load_suite(str(path))).entries]
    code = ("import sys; from kdbench.suite import expand, load_suite; "
            f"print(' '.join(e.job_id for e in expand(load_suite({str(path)!r})).entries))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert there.stdout.split() == here


def test_ids_ignore_names_resources_and_member_order_but_not_hyperparameters(tmp_path):
    base = {e.job_id for e in plan_of(tmp_path).entries}
    renamed = TINY_SUITE.replace("name: tiny", "name: other").replace("big", "large") + "resources: {cpus: 2}\n"
    assert {e.job_id for e in plan_of(tmp_path, renamed, "b.yaml").entries} == base
    reordered = TINY_SUITE.replace("members: [big, mid]", "members: [mid, big]")
    assert {e.job_id for e in plan_of(tmp_path, reordered, "c.yaml").entries} == base
    explicit = TINY_SUITE.replace("[none, kd]", "[none, {kd: {temperature: 4.0, alpha: 0.9}}]")
    assert {e.job_id for e in plan_of(tmp_path, explicit, "d.yaml").entries} == base
    hotter = TINY_SUITE.replace("[none, kd]", "[none, {kd: {temperature: 8}}]")
    changed = {e.job_id for e in plan_of(tmp_path, hotter, "e.yaml").entries}
    assert changed & base == {e.job_id for e in plan_of(tmp_path).entries if e.job.kind != "student"}


def test_a_chain_link_equal_to_a_direct_distillation_is_one_job(tmp_path):
    text = TINY_SUITE.replace("  - {name: small, arch: mlp, widths: [4]}",
                              "  - {name: small, arch: mlp, widths: [4]}\n  - {name: ta, arch: mlp, widths: [8]}")
    text = text.replace("[big, mid, small]", "[big, ta, small]")
    plan = plan_of(tmp_path, text)
    direct = [e for e in plan.entries if e.chain == ("big", "ta")]
    assert len(direct) == 2  # one per seed, shared by the grid and the chain
    assert len({e.job_id for e in plan.entries}) == len(plan.entries)


def test_ten_thousand_jobs_expand(tmp_path):
    students = "\n".join(f"  - {{name: s{i}, arch: mlp, widths: [{i + 1}]}}" for i in range(50))
    text = TINY_SUITE.replace("  - {name: small, arch: mlp, widths: [4]}", students)
    text = text.replace("chains:\n  - [big, mid, small]\n", "")
    text = text.replace("seeds: [0, 1]", f"seeds: {list(range(50))}")
    plan = plan_of(tmp_path, text)
    assert len(plan) == 2 + 50 * 50 + 3 * 50 * 50  # 10,002 jobs
    assert len({e.job_id for e in plan.entries}) == len(plan)


def test_pairs_replace_the_full_grid(tmp_path):
    text = TINY_SUITE.replace("  - {name: small, arch: mlp, widths: [4]}",
                              "  - {name: small, arch: mlp, widths: [4]}\n  - {name: ta, arch: mlp, widths: [8]}")
    text = text.replace("chains:\n  - [big, mid, small]\n", "pairs: [[big, small], [both, ta]]\n")
    plan = plan_of(tmp_path, text)
    distilled = sorted({e.chain for e in plan.entries if e.job.kind == "student"})
    assert distilled == [("big", "small"), ("both", "ta")]
    assert plan.counts() == {"teacher": 2, "baseline": 4, "student": 4}  # 2 pairs × kd × 2 seeds


def test_a_model_can_change_the_recipe_for_its_own_jobs(tmp_path):
    text = TINY_SUITE.replace("{name: small, arch: mlp, widths: [4]}",
                              "{name: small, arch: mlp, widths: [4], recipe: {optimizer: {lr: 0.01}, epochs: 5}}")
    plan = plan_of(tmp_path, text)
    small = [e.job for e in plan.entries if e.student == "small"]
    assert small and all(j.recipe.optimizer.lr == 0.01 and j.recipe.epochs == 5 for j in small)
    assert all(j.recipe.optimizer.momentum == 0.9 for j in small)  # the rest of the suite's recipe stays
    others = [e.job for e in plan.entries if e.student != "small"]
    assert all(j.recipe.optimizer.lr == 0.1 for j in others)


def test_where_the_data_lives_is_not_part_of_a_job_id():
    from kdbench.jobs import Component, Job

    recipe = {"epochs": 1}
    a = Job("teacher", Component("cifar100", {"root": "/data/a", "val_size": 5000}), Component("resnet8"), recipe,
            Component("none"), 0)
    b = Job("teacher", Component("cifar100", {"root": "/mnt/b", "val_size": 5000}), Component("resnet8"), recipe,
            Component("none"), 0)
    c = Job("teacher", Component("cifar100", {"root": "/data/a", "val_size": 1000}), Component("resnet8"), recipe,
            Component("none"), 0)
    assert a.job_id == b.job_id != c.job_id
