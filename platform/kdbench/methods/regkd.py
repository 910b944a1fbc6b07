"""`regkd`: knowledge distillation for regression — the teacher's prediction as a soft target.

Hinton et al.'s soft-target objective carried over to real-valued targets, as regression KD papers do
(e.g. Takamoto, Morishita & Imaoka, "An efficient method of training small models for regression problems
with knowledge distillation", MIPR 2020, whose outlier-robust weighting is not reproduced here). With student
prediction s, teacher prediction t (an ensemble: the mean of its members) and targets y:

    L = (1 − α) · MSE(s, y) + α · MSE(s, t)

Reduction: each squared error averaged over targets and batch (`F.mse_loss`'s mean). The teacher is
detached. Default α = 0.5: kdbench's choice (the cited paper weights per sample; there is no paper value for
a constant α); set it in the suite.

Params defaults: alpha=0.5
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field

from .base import Method, MethodParams, Needs, register_method


class RegKDParams(MethodParams):
    alpha: float = Field(default=0.5, ge=0.0, le=1.0)


@register_method
class RegKD(Method):
    name = "regkd"
    Params = RegKDParams
    needs = Needs(teacher=True)
    tasks = ("regression",)

    def forward(self, batch, student, teacher, state):
        p: RegKDParams = self.params
        task = self.ctx.task
        prediction = task.prediction(student)
        target = task.prediction(teacher).detach()
        return {task.loss_term: (1.0 - p.alpha) * task.loss(prediction, batch.y),
                "kd": p.alpha * F.mse_loss(prediction, target)}
