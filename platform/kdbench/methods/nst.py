"""`nst`: Like What You Like: Knowledge Distill via Neuron Selectivity Transfer — Huang & Wang, arXiv 2017.

Each channel's spatial response is one sample of a distribution ("neuron selectivity"); the student matches
the teacher's distribution by squared MMD with the polynomial kernel k(x, y) = (xᵀy + c)^d, d = 2, c = 0,
on L2-normalised channel vectors. Per stage, with student channels s_i (C_S of them) and teacher channels t_j
(C_T), each (H·W,) and normalised:

    MMD² = mean_{j,j'} k(t_j, t_j') + mean_{i,i'} k(s_i, s_i') − 2 · mean_{i,j} k(s_i, t_j)

averaged over the batch and summed over stages 1..N; the term is b · Σ MMD². The first (teacher–teacher)
term is constant for the student; it is included, detached, as in the benchmark (RepDistiller
`distiller_zoo/NST.py`, `full_loss = True`), so the value is the MMD itself (≥ 0). The paper weighs the
term λ/2; the benchmark's b multiplies it directly.

Defaults (benchmark): b = 50 (`scripts/run_cifar_distill.sh`, NST: `-a 0 -b 50`), taps feat[1:-1] (every
stage output). Where student and teacher maps differ in size the larger is average-pooled to the smaller's
(the reference does the same for square maps).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=50.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Incompatible, Method, Needs, register_method
from .mixing import MixParams, label_and_kd
from .taps import stages


def poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, Ca, D), (B, Cb, D) → (B, Ca, Cb) of (aᵀb)², the degree-2 polynomial kernel with c = 0."""
    return torch.bmm(a, b.transpose(1, 2)).pow(2)


def nst_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Squared MMD between the channel responses of (B, C_S, H, W) and (B, C_T, H', W'), mean over the batch."""
    size = (min(f_s.shape[-2], f_t.shape[-2]), min(f_s.shape[-1], f_t.shape[-1]))
    s = F.normalize(F.adaptive_avg_pool2d(f_s, size).flatten(2), dim=2)  # (B, C_S, H·W)
    t = F.normalize(F.adaptive_avg_pool2d(f_t, size).flatten(2), dim=2)  # (B, C_T, H·W)
    return poly_kernel(t, t).mean().detach() + poly_kernel(s, s).mean() - 2 * poly_kernel(s, t).mean()


class NSTParams(MixParams):
    weight: float = Field(default=50.0, ge=0.0)  # b


@register_method
class NST(Method):
    name = "nst"
    Params = NSTParams
    needs = Needs(teacher=True, features=("stage",))
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time

    def __init__(self, params: NSTParams, ctx) -> None:
        super().__init__(params, ctx)
        n_s, n_t = len(stages(ctx.student_features)), len(stages(ctx.teacher_features))
        if n_t == 0:
            raise Incompatible("nst needs a single teacher's stage taps; this teacher gives none "
                             "(an ensemble has no features)")
        if n_s != n_t:
            raise Incompatible(f"nst pairs stages one to one: student has {n_s}, teacher {n_t}")

    def forward(self, batch, student, teacher, state):
        p: NSTParams = self.params
        pairs = zip(stages(student.features), stages(teacher.features), strict=True)
        loss = sum(nst_loss(s, t.detach()) for s, t in pairs)
        return label_and_kd(p, batch, student.logits, teacher) | {"nst": p.weight * loss}
