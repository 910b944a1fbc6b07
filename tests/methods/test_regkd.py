"""`regkd`: (1 − α)·MSE(s, y) + α·MSE(s, t) on regression targets, written out independently."""

from __future__ import annotations

import pytest
import torch

from kdbench.methods import Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.tasks.regression import Regression
from kdbench.zoo.models.base import ModelOutput


def test_the_loss_is_the_weighted_squared_errors_to_targets_and_teacher():
    s = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    y = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    t = torch.tensor([[[2.0, 2.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, -2.0]]])  # two members: mean [[1, 2], [0, -1]]
    method = create_method("regkd", {"alpha": 0.25}, MethodContext(num_classes=2, num_train=2, task=Regression()))
    terms = method(Batch(torch.zeros(2, 3), y, torch.arange(2)), ModelOutput(s), TeacherOutput(t), TrainState(0, 1))
    # MSE to targets: errors (1, 0, -1, -2) -> (1 + 0 + 1 + 4) / 4 = 1.5; to the teacher's mean: all 0.
    assert terms["mse"].item() == pytest.approx(0.75 * 1.5) and terms["kd"].item() == pytest.approx(0.0)
    off = TeacherOutput(torch.zeros(1, 2, 2))  # teacher predicts 0: (1 + 4 + 0 + 1) / 4 = 1.5
    assert method(Batch(torch.zeros(2, 3), y, torch.arange(2)), ModelOutput(s), off,
                  TrainState(0, 1))["kd"].item() == pytest.approx(0.25 * 1.5)


def test_defaults_and_declarations():
    from kdbench.methods import METHODS

    cls = METHODS.get("regkd")
    assert cls.Params().alpha == 0.5 and cls.tasks == ("regression",) and "regression" in METHODS.get("none").tasks
