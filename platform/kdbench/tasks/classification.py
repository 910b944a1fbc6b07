"""`classification`: one label per sample; the model outputs logits over classes.

Loss: cross-entropy, mean over the batch. Metrics: top-1 accuracy (`acc`, primary, higher is better, a
fraction shown in percent). A teacher's prediction is its (ensemble-combined) log-probabilities at T = 1;
agreement is the fraction of samples where student and teacher have the same top-1 class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdbench.outputs import TeacherOutput

from .base import Metric, Task, register_task


@register_task
class Classification(Task):
    name = "classification"
    metrics = (Metric("acc", "accuracy", True, "%", 100.0, 0.0, 1.0),)
    primary = "acc"
    loss_term = "ce"

    def prediction(self, out):
        return out.log_probs(1.0) if isinstance(out, TeacherOutput) else out.logits

    def loss(self, prediction, y):
        return F.cross_entropy(prediction, y)

    def batch_sums(self, prediction, y):
        return {"correct": (prediction.argmax(-1) == y).sum()}

    def train_metrics(self, sums, n):
        return {"train_acc": sums["correct"] / n}

    def score(self, predictions, y, fit=None):
        return {"acc": float((predictions.argmax(-1) == y).float().mean())}

    def agreement(self, student: torch.Tensor, teacher: torch.Tensor) -> float:
        return float((student.argmax(-1) == teacher.argmax(-1)).float().mean())
