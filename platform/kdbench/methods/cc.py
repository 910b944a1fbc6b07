"""`cc`: Correlation Congruence for Knowledge Distillation — Peng, Jin, Liu, Zhou, Wu, Liu, Li & Zhang, ICCV 2019.

Two variants of the correlation term L; the loss is r·CE + a·KD + b·L.

`variant: benchmark` (default) — RepDistiller's `Correlation` (code the authors e-mailed to Tian et al.): both
pooled embeddings go through trainable linear heads to 128 dims, e_s = W_s·f_s + c_s, e_t = W_t·f_t + c_t, and

    δ = |e_s − e_t|  (B, 128),   L = 1/(B−1) · Σ_{i=1}^{B−1} ⟨δ_i, δ_{i+1}⟩

i.e. products of *consecutive batch rows* of the instance-wise differences: not the paper's formula, and it
depends on the order of the batch. Both heads are trained with the student (the teacher's features still get no
gradient); note that shrinking both heads can lower L without the student's features moving.

`variant: paper` — the paper's correlation congruence: with the embeddings f (B, D) L2-normalised, the
correlation matrix ψ(F) = [k(f_i, f_j)] (B, B) uses the Gaussian RBF kernel's P-th order Taylor expansion

    k(x, y) = exp(−γ‖x − y‖²) ≈ Σ_{p=0}^{P} exp(−2γ) · (2γ)^p / p! · (xᵀy)^p      (exact in the limit, ‖x‖=‖y‖=1)
    L_CC = 1/B² · ‖ψ(F_t) − ψ(F_s)‖²_F

computed on the raw embeddings (the B×B correlations need no equal widths, and a trainable teacher-side head
would let both sides collapse to constant correlations); P = 2, γ = 0.4, the values of public re-implementations
(e.g. JDAI-CV/FaceX-Zoo's `CC(gamma, P_order)`), not checked against the paper's text.

Defaults: feat[-1] = the pooled embedding, heads to 128 (`--feat_dim 128`), b = 0.02, r = 1, a = 0
(RepDistiller's `scripts/run_cifar_distill.sh`: `--distill correlation -r 1 -a 0 -b 0.02`). b was tuned for the
benchmark variant; set it in the suite for the paper variant.

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=0.02, variant='benchmark', feat_dim=128,
gamma=0.4, order=2
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .base import Method, Needs, register_method
from .mixing import MixParams, label_and_kd
from .taps import embedding


def cc_benchmark_loss(e_s: torch.Tensor, e_t: torch.Tensor) -> torch.Tensor:
    """Mean over consecutive row pairs (i, i+1) of ⟨|e_s − e_t|_i, |e_s − e_t|_{i+1}⟩; inputs (B, d)."""
    delta = (e_s - e_t).abs()  # (B, d)
    return (delta[:-1] * delta[1:]).sum(1).mean()


def correlation(f: torch.Tensor, gamma: float, order: int) -> torch.Tensor:
    """(B, D) -> (B, B) Taylor-expanded Gaussian RBF kernel between the L2-normalised rows."""
    cos = F.normalize(f, dim=1) @ F.normalize(f, dim=1).t()  # (B, B)
    return sum(math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * cos.pow(p) for p in range(order + 1))


def cc_paper_loss(f_s: torch.Tensor, f_t: torch.Tensor, gamma: float = 0.4, order: int = 2) -> torch.Tensor:
    """‖ψ(F_t) − ψ(F_s)‖_F² / B²."""
    return (correlation(f_t, gamma, order) - correlation(f_s, gamma, order)).pow(2).mean()


class CCParams(MixParams):
    weight: float = Field(default=0.02, ge=0.0)  # b
    variant: Literal["benchmark", "paper"] = "benchmark"
    feat_dim: int = Field(default=128, gt=0)  # heads' output width (benchmark variant)
    gamma: float = Field(default=0.4, gt=0.0)  # RBF kernel width (paper variant)
    order: int = Field(default=2, ge=0)  # Taylor order P (paper variant)


@register_method
class CC(Method):
    name = "cc"
    Params = CCParams
    needs = Needs(teacher=True, features=("embedding",))
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time
    tasks = ("classification", "linear_probe")  # no label read with ce_weight 0 (cross-modal transfer)

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        (d_s,), (d_t,) = embedding(ctx.student_features), embedding(ctx.teacher_features)
        if params.variant == "benchmark":
            self.embed_s, self.embed_t = nn.Linear(d_s, params.feat_dim), nn.Linear(d_t, params.feat_dim)

    def forward(self, batch, student, teacher, state):
        p: CCParams = self.params
        f_s, f_t = embedding(student.features), embedding(teacher.features).detach()  # (B, D_s), (B, D_t)
        if p.variant == "benchmark":
            loss = cc_benchmark_loss(self.embed_s(f_s), self.embed_t(f_t))
        else:
            loss = cc_paper_loss(f_s, f_t, p.gamma, p.order)
        return label_and_kd(p, batch, student.logits, teacher) | {"cc": p.weight * loss}
