"""`sp`: Similarity-Preserving Knowledge Distillation — Tung & Mori, ICCV 2019.

Objective (§3), with the last stage's activations flattened to Q (B, C·H·W):

    G̃ = Q·Qᵀ (B, B),   G = G̃ with each row divided by its L2 norm
    L_SP = 1/B² · ‖G_t − G_s‖_F²
    loss = r·CE + a·KD + b·L_SP

Reduction: the squared Frobenius norm divided by B² (the paper's and RepDistiller's `Similarity`). RepDistiller
returns it as a shape-[1] tensor; here it is a scalar. Student and teacher widths and spatial sizes may differ:
only the B×B similarities are compared.

Defaults: the last stage feat[-2], b = 3000, r = 1, a = 0 (RepDistiller's `scripts/run_cifar_distill.sh`:
`--distill similarity -r 1 -a 0 -b 3000`; the paper's γ = 3000 on CIFAR-10).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=3000.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Incompatible, Method, Needs, register_method
from .mixing import MixParams, label_and_kd
from .taps import stages


def similarity(f: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, B) row-L2-normalised Gram matrix of the flattened activations."""
    q = f.flatten(1)  # (B, D)
    return F.normalize(q @ q.t(), dim=1)


def sp_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """‖G_t − G_s‖_F² / B²."""
    b = f_s.shape[0]
    return (similarity(f_t) - similarity(f_s)).pow(2).sum() / b**2


class SPParams(MixParams):
    weight: float = Field(default=3000.0, ge=0.0)  # b (the paper's γ)


@register_method
class SP(Method):
    name = "sp"
    Params = SPParams
    needs = Needs(teacher=True, features=("stage",))  # the last stage only
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        if not stages(ctx.student_features) or not stages(ctx.teacher_features):
            raise Incompatible("sp needs a stage tap (stage1..N) on both the student and the teacher")

    def forward(self, batch, student, teacher, state):
        p: SPParams = self.params
        loss = sp_loss(stages(student.features)[-1], stages(teacher.features)[-1].detach())
        return label_and_kd(p, batch, student.logits, teacher) | {"sp": p.weight * loss}
