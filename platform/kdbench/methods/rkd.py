"""`rkd`: Relational Knowledge Distillation — Park, Kim, Lu & Cho, CVPR 2019.

Objective (§3.2), on the pooled embeddings t_i (teacher) and s_i (student) of a batch, with the Huber loss l_δ
(δ = 1, `smooth_l1`):

    ψ_D(x_i, x_j) = ‖x_i − x_j‖₂ / μ,  μ = mean of the non-zero pairwise distances     (distance-wise, §3.2.1)
    ψ_A(x_i, x_j, x_k) = ⟨e^{ij}, e^{kj}⟩,  e^{ij} = (x_i − x_j) / ‖x_i − x_j‖₂         (angle-wise, §3.2.2)
    L = w_D · mean_{i,j} l_δ(ψ_D(t), ψ_D(s)) + w_A · mean_{i,j,k} l_δ(ψ_A(t), ψ_A(s))
    loss = r·CE + a·KD + b·L

Reduction: the Huber loss averaged over all B² pairs and all B³ triplets (the diagonal and degenerate triplets
included; a zero difference vector has zero direction), as in the authors' code and RepDistiller's `RKDLoss`.
Distances are √max(‖x_i‖² + ‖x_j‖² − 2x_iᵀx_j, 1e-12) with a zero diagonal. The teacher side carries no gradient.

Defaults: the embedding feat[-1], w_D = 25, w_A = 50 (the paper's and RepDistiller's `RKDLoss(w_d=25, w_a=50)`),
b = 1, r = 1, a = 0 (RepDistiller's `scripts/run_cifar_distill.sh`: `--distill rkd -r 1 -a 0 -b 1`).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=1.0, distance_weight=25.0,
angle_weight=50.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Method, Needs, register_method
from .mixing import MixParams, label_and_kd
from .taps import embedding


def pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(B, D) -> (B, B) Euclidean distances; the diagonal is exactly 0 (and carries no gradient)."""
    sq = e.pow(2).sum(1)  # (B,)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp(min=eps).sqrt()
    return d * (1 - torch.eye(len(e), dtype=e.dtype, device=e.device))


def distance_potential(e: torch.Tensor) -> torch.Tensor:
    d = pairwise_distances(e)
    return d / d[d > 0].mean()


def angle_potential(e: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B, B): entry [j, i, k] is the cosine of the angle at x_j between x_i and x_k."""
    diff = F.normalize(e[None, :, :] - e[:, None, :], dim=2)  # (B, B, D): [j, i] = unit(x_i − x_j)
    return diff @ diff.transpose(1, 2)


def rkd_loss(f_s: torch.Tensor, f_t: torch.Tensor, w_d: float = 25.0, w_a: float = 50.0) -> torch.Tensor:
    s, t = f_s.flatten(1), f_t.flatten(1).detach()
    with torch.no_grad():
        t_d, t_a = distance_potential(t), angle_potential(t)
    loss_d = F.smooth_l1_loss(distance_potential(s), t_d)
    loss_a = F.smooth_l1_loss(angle_potential(s), t_a)
    return w_d * loss_d + w_a * loss_a


class RKDParams(MixParams):
    weight: float = Field(default=1.0, ge=0.0)  # b
    distance_weight: float = Field(default=25.0, ge=0.0)  # w_D
    angle_weight: float = Field(default=50.0, ge=0.0)  # w_A


@register_method
class RKD(Method):
    name = "rkd"
    Params = RKDParams
    needs = Needs(teacher=True, features=("embedding",))
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time
    tasks = ("classification", "linear_probe")  # no label read with ce_weight 0 (cross-modal transfer)

    def __init__(self, params, ctx):
        super().__init__(params, ctx)

    def forward(self, batch, student, teacher, state):
        p: RKDParams = self.params
        loss = rkd_loss(embedding(student.features), embedding(teacher.features), p.distance_weight,
                        p.angle_weight)
        return label_and_kd(p, batch, student.logits, teacher) | {"rkd": p.weight * loss}
