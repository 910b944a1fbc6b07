"""`protocol: paper` — the whole training set and the last epoch, as the papers ran — and `pair_params:`, a
paper's per-pair hyperparameters (mdistiller's DKD β); every row says which protocol it used."""

from __future__ import annotations

import numpy as np
import pytest

from kdbench.engine import run_job
from kdbench.jobs import Component, Job, Recipe
from kdbench.results import result_row
from kdbench.store import Store
from kdbench.suite import SpecError, expand, load_suite
from kdbench.suite.protocol import PAPER, VALIDATION, protocol_of

from .conftest import write_suite
from .test_vision_datasets import N_TRAIN, write_cifar100_py

SUITE = """\
name: paper
dataset: {{name: cifar100, root: {root}, val_size: 5}}
recipe: {{epochs: 2, batch_size: 8}}
teachers: [{{name: t, arch: resnet8}}, {{name: t2, arch: resnet14}}]
students: [{{name: s, arch: resnet8}}]
methods: [none, kd, dkd]
seeds: [0]
{extra}"""


def _suite(tmp_path, extra: str = "", name: str = "suite.yaml"):
    if not (tmp_path / "data").exists():
        write_cifar100_py(tmp_path / "data")
    return load_suite(str(write_suite(tmp_path, SUITE.format(root=tmp_path / "data", extra=extra), name)))


def test_the_paper_protocol_trains_on_the_whole_training_set_and_keeps_the_last_epoch(tmp_path):
    honest, paper = _suite(tmp_path), _suite(tmp_path, "protocol: paper\n", "p.yaml")
    assert honest.dataset.params["val_size"] == 5 and honest.recipe.select == "best_val"
    assert paper.dataset.params["val_size"] == 0 and paper.recipe.select == "last"
    assert all(m.recipe.select == "last" for m in (*paper.teachers, *paper.students))
    jobs = {protocol_of(e.job) for e in expand(paper).entries}
    assert jobs == {PAPER} and {protocol_of(e.job) for e in expand(honest).entries} == {VALIDATION}
    ids = {e.job_id for e in expand(paper).entries}
    assert not ids & {e.job_id for e in expand(honest).entries}  # other work: other jobs
    row = result_row(expand(paper).entries[0], "paper")
    assert row["protocol"] == PAPER


def test_a_job_without_a_validation_split_trains_and_reports_no_validation_metric(tmp_path):
    write_cifar100_py(tmp_path / "data")
    params = {"root": str(tmp_path / "data"), "val_size": 0}
    job = Job("baseline", Component("cifar100", params), Component("resnet8", {}),
              Recipe(epochs=2, batch_size=8, select="last"), Component("none", {}), seed=0)
    final = run_job(job, Store(tmp_path / "store"))
    assert set(final.metrics) == {"test_acc"} and final.selected_epoch == 2
    history = Store(tmp_path / "store").read_bytes(f"artifacts/{job.job_id}/history.json")
    assert b"val_acc" not in history
    from kdbench.engine.data import dataset_on

    data = dataset_on(job.dataset, "cpu")
    assert len(data.train) == N_TRAIN and len(data.val) == 0  # every training image trains
    assert np.isfinite(final["final_train_loss"])


@pytest.mark.parametrize("old, new, line, fragment", [
    ("recipe: {epochs: 2, batch_size: 8}", "recipe: {epochs: 2, batch_size: 8, select: best_val}\nprotocol: paper",
     "recipe.select", "protocol paper keeps the last epoch"),
    ("arch: resnet8}]", "arch: resnet8, recipe: {select: best_val}}]\nprotocol: paper", "students[0].recipe.select",
     "protocol paper keeps the last epoch"),
    ("seeds: [0]", "seeds: [0]\nprotocol: papers", "protocol", "validation"),
    ("seeds: [0]", "seeds: [0]\npair_params: [{pair: [t, nobody], method: dkd, params: {beta: 2}}]",
     "pair_params[0].pair[1]", "'nobody' is not a student"),
    ("seeds: [0]", "seeds: [0]\npair_params: [{pair: [t, s], method: crd, params: {}}]", "pair_params[0].method",
     "method 'crd' is not in the suite's `methods`"),
    ("seeds: [0]", "seeds: [0]\npair_params: [{pair: [t, s], method: dkd, params: {betta: 2}}]",
     "pair_params[0].params", "betta"),
])
def test_protocol_and_pair_params_mistakes_name_their_field(tmp_path, old, new, line, fragment):
    write_cifar100_py(tmp_path / "data")
    text = SUITE.format(root=tmp_path / "data", extra="")
    assert old in text
    with pytest.raises(SpecError) as e:
        load_suite(str(write_suite(tmp_path, text.replace(old, new, 1))))
    assert line in str(e.value) and fragment in str(e.value)


def test_a_dataset_without_a_validation_size_cannot_run_the_paper_protocol(tmp_path):
    text = ("name: d\ndataset: {name: digits}\nrecipe: {epochs: 1, batch_size: 32}\n"
            "students: [{name: s, arch: mlp, widths: [8]}]\nmethods: [none]\nseeds: [0]\nprotocol: paper\n")
    with pytest.raises(SpecError, match="dataset digits has no `val_size`"):
        load_suite(str(write_suite(tmp_path, text)))


def test_pair_params_set_a_method_s_hyperparameters_for_one_pair_only(tmp_path):
    suite = _suite(tmp_path, "pair_params: [{pair: [t2, s], method: dkd, params: {beta: 2.0}}]\n")
    betas = {(e.teacher, e.student): e.job.method.params["beta"] for e in expand(suite).entries
             if e.job.method.name == "dkd"}
    assert betas == {("t", "s"): 8.0, ("t2", "s"): 2.0}  # the paper's default elsewhere
    plain = {e.job_id for e in expand(_suite(tmp_path, name="plain.yaml")).entries}
    changed = {e.job_id for e in expand(suite).entries} - plain
    assert len(changed) == 1  # only the one cell (one seed) is other work


def test_the_paper_suite_uses_the_paper_protocol_and_mdistiller_s_betas(tmp_path, monkeypatch):
    from .test_studies import _fake_data_root

    _fake_data_root(tmp_path)
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(tmp_path))
    suite = load_suite("benchmarks/suites/crd_cifar100_paper.yaml")
    assert suite.protocol == PAPER and suite.dataset.params["val_size"] == 0
    betas = {(e.teacher, e.student): e.job.method.params["beta"] for e in expand(suite).entries
             if e.job.method.name == "dkd"}
    # mdistiller configs/cifar100/dkd/*.yaml: BETA 2.0 (res56_res20, res110_res32), 6.0 (vgg13_vgg8, vgg13_mv2,
    # wrn40_2_wrn_16_2, wrn40_2_wrn_40_1), the default 8.0 for the other configs
    assert betas[("resnet56", "resnet20")] == betas[("resnet110", "resnet32")] == 2.0
    assert {betas[p] for p in [("vgg13", "vgg8"), ("vgg13", "mobilenetv2"), ("wrn_40_2", "wrn_16_2"),
                               ("wrn_40_2", "wrn_40_1")]} == {6.0}
    assert {betas[p] for p in [("resnet32x4", "resnet8x4"), ("resnet32x4", "shufflenetv1"),
                               ("resnet50_cifar", "mobilenetv2"), ("wrn_40_2", "shufflenetv1")]} == {8.0}
