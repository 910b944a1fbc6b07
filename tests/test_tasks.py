"""The task seam: classification and regression score, select and rank by their primary metric in its
direction, and a regression suite runs end to end through Ray Tune."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.outputs import TeacherOutput
from kdbench.results import open_results
from kdbench.results.report import build_leaderboard
from kdbench.tasks import TASKS, metric_named, task_of
from kdbench.zoo.models.base import ModelOutput

from .conftest import write_suite

REGRESSION = """\
name: regress
dataset: {name: synthetic_regression, n_train: 512, n_val: 128, n_test: 256, dim: 8, targets: 2, noise: 0.05}
recipe: {epochs: 6, batch_size: 64, optimizer: {name: adam, lr: 0.01, weight_decay: 0}}
teachers: [{name: big, arch: mlp, widths: [64, 64]}]
students: [{name: small, arch: mlp, widths: [8]}]
methods: [none, regkd, {regkd: {alpha: 0.9}}, kd]
seeds: [0, 1]
"""


def test_classification_scores_top1_and_agreement():
    task = TASKS.get("classification")()
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 1, 2])
    assert task.score(logits, y) == {"acc": 0.5}
    # argmaxes 0, 1, 2, 0 against the flipped 0, 2, 1, 0: the first and last agree
    assert task.agreement(logits, logits.flip(0)) == 0.5 and task.agreement(logits, logits) == 1.0
    sums = task.batch_sums(logits, y)
    assert task.train_metrics(sums, 4)["train_acc"].item() == 0.5
    ensemble = TeacherOutput(torch.stack([logits, logits]))  # a teacher's prediction: its log-probabilities
    assert torch.allclose(task.prediction(ensemble), torch.log_softmax(logits, 1))


def test_regression_scores_rmse_and_mae_lower_is_better():
    task = task_of("synthetic_regression")
    pred, y = torch.tensor([[1.0, 2.0], [3.0, 5.0]]), torch.tensor([[1.0, 0.0], [4.0, 5.0]])  # errors 0, 2, -1, 0
    scores = task.score(pred, y)
    assert scores["rmse"] == pytest.approx(math.sqrt(5 / 4)) and scores["mae"] == pytest.approx(3 / 4)
    assert task.train_metrics(task.batch_sums(pred, y), 2)["train_rmse"].item() == pytest.approx(math.sqrt(5 / 4))
    assert task.loss(task.prediction(ModelOutput(pred)), y).item() == pytest.approx(5 / 4)
    members = torch.stack([pred, pred + 2])  # an ensemble predicts its members' mean
    assert torch.equal(task.prediction(TeacherOutput(members)), pred + 1)
    rmse = task.metric()
    assert rmse.name == "rmse" and not rmse.higher_is_better
    assert rmse.better(0.1, 0.2) and not rmse.better(0.3, 0.2) and rmse.better(0.3, None)
    assert metric_named("acc").better(0.9, 0.8) and metric_named("mae").sort_key(0.5) < metric_named("mae").sort_key(1)


def test_batch_sums_run_under_vmap():
    """Fused training computes each model's epoch statistics with torch.vmap."""
    for task, y in ((TASKS.get("classification")(), torch.randint(3, (2, 5))),
                    (TASKS.get("regression")(), torch.randn(2, 5, 3))):
        pred = torch.randn(2, 5, 3)
        fused = torch.vmap(task.batch_sums)(pred, y)
        for i in range(2):
            alone = task.batch_sums(pred[i], y[i])
            assert all(torch.allclose(fused[k][i].float(), alone[k].float()) for k in alone)


def test_a_method_that_does_not_support_the_task_is_pruned_with_its_reason(tmp_path):
    result = CliRunner().invoke(app, ["validate", str(write_suite(tmp_path, REGRESSION))])
    assert result.exit_code == 0, result.output
    assert "kd supports the tasks classification, sequence_classification, masked_lm, not regression" in result.output


@pytest.mark.slow
def test_a_regression_suite_runs_end_to_end_and_ranks_by_rmse(tmp_path, ray_local, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = write_suite(tmp_path, REGRESSION)
    result = CliRunner().invoke(app, ["run", str(suite), "--store", str(tmp_path / "store"), "--no-track"])
    assert result.exit_code == 0, result.output
    assert "jobs: 7 total, 0 cached, 7 run, 0 failed" in result.output  # 1 teacher, 2 alone, 2 regkd × 2 seeds
    # kd pruned, said why
    assert "kd supports the tasks classification, sequence_classification, masked_lm, not regression" in result.output
    assert "lower is better" in result.output and "rmse" in result.output
    rows = open_results(tmp_path / "store").to_arrow().to_pylist()
    assert {r["task"] for r in rows} == {"regression"} and all(r["test_acc"] is None for r in rows)
    assert all(math.isfinite(dict(r["metrics"])["test_rmse"]) for r in rows)
    lb = build_leaderboard(str(tmp_path / "store"), "regress")
    cells = lb.methods.to_pylist()
    assert {c["metric"] for c in cells} == {"rmse"}
    distilled = sorted((c for c in cells if c["teacher"] == "big"), key=lambda c: c["rank"])
    assert len(distilled) == 2 and distilled[0]["rank"] == 1
    assert distilled[0]["mean"] <= distilled[1]["mean"]  # rank 1: the lowest RMSE
    teacher = next(r for r in rows if r["kind"] == "teacher")
    alone = [c for c in cells if c["teacher"] is None][0]
    assert dict(teacher["metrics"])["test_rmse"] < alone["mean"]  # the 64×64 teacher beats an 8-unit student
