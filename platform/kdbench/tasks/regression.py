"""`regression`: real-valued targets, (N, K); the model's outputs are the predictions.

Loss: mean squared error over targets and batch. Metrics: root-mean-squared error (`rmse`, primary, lower
is better) and mean absolute error (`mae`), both over every target of every sample. A teacher ensemble
predicts the mean of its members' outputs (its `combine` rule is for distributions, not values).
"""

from __future__ import annotations

import torch.nn.functional as F

from kdbench.outputs import TeacherOutput

from .base import Metric, Task, register_task


@register_task
class Regression(Task):
    name = "regression"
    metrics = (Metric("rmse", "root-mean-squared error", False, "", 1.0, 0.0, None),
               Metric("mae", "mean absolute error", False, "", 1.0, 0.0, None))
    primary = "rmse"
    loss_term = "mse"

    def prediction(self, out):
        return out.member_logits.mean(0) if isinstance(out, TeacherOutput) else out.logits

    def loss(self, prediction, y):
        return F.mse_loss(prediction, y)

    def batch_sums(self, prediction, y):
        err = prediction - y  # (B, K): every sample has K targets, so per-sample means average to the whole mean
        return {"squared": (err * err).mean(-1).sum()}

    def train_metrics(self, sums, n):
        return {"train_rmse": (sums["squared"] / n).sqrt()}

    def score(self, predictions, y, fit=None):
        err = predictions - y
        return {"rmse": float(err.pow(2).mean().sqrt()), "mae": float(err.abs().mean())}
