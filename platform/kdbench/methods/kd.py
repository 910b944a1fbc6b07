"""`kd`: Distilling the Knowledge in a Neural Network — Hinton, Vinyals & Dean, NIPS 2014 workshop (2015).

Objective (§2), with student logits s, teacher distribution p_T at temperature T (for an
ensemble, the arithmetic or geometric mean of its members' softened distributions, §2/§4):

    L = (1 − α) · CE(softmax(s), y)  +  α · T² · KL(p_T ‖ softmax(s / T))

The T² factor keeps the soft-target gradients' magnitude independent of T (§2.1).
Reduction: KL summed over classes and averaged over the batch ("batchmean"), CE averaged over
the batch — the reduction of the CRD/DKD benchmark code (RepDistiller's DistillKL), not the
mean over classes some codebases use.

Defaults: T = 4, α = 0.9 — the CRD benchmark's KD settings (Tian et al. 2020, RepDistiller:
`-r 0.1 -a 0.9 --kd_T 4`). Hinton et al. used T = 20 on MNIST; set it in the suite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Method, MethodParams, Needs, register_method


def kd_loss(student_logits: torch.Tensor, teacher_log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(p_T ‖ q_T), summed over classes, mean over the batch. teacher_log_probs: (B, K) at T."""
    log_q = F.log_softmax(student_logits / temperature, dim=1)  # (B, K)
    kl = F.kl_div(log_q, teacher_log_probs, reduction="batchmean", log_target=True)
    return kl * temperature**2


class KDParams(MethodParams):
    temperature: float = Field(default=4.0, gt=0.0)
    alpha: float = Field(default=0.9, ge=0.0, le=1.0)


@register_method
class KD(Method):
    name = "kd"
    Params = KDParams
    needs = Needs(teacher=True)

    def forward(self, batch, student, teacher, state):
        p: KDParams = self.params
        target = teacher.log_probs(p.temperature).detach()
        return {
            "ce": (1.0 - p.alpha) * F.cross_entropy(student.logits, batch.y),
            "kd": p.alpha * kd_loss(student.logits, target, p.temperature),
        }
