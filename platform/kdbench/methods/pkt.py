"""`pkt`: Learning Deep Representations with Probabilistic Knowledge Transfer — Passalis & Tefas, ECCV 2018.

Objective (§3): model each representation space by the conditional probabilities of a cosine-similarity kernel
between the samples of a batch, and match the student's to the teacher's with a KL divergence:

    K(a, b) = ½ (aᵀb / (‖a‖‖b‖) + 1),   p_{j|i} = K(t_i, t_j) / Σ_k K(t_i, t_k),   q_{j|i} likewise on s
    L = mean_{i,j} p_{j|i} · log((p_{j|i} + ε) / (q_{j|i} + ε)),   loss = r·CE + a·KD + b·L

Reduction and details of the authors' code (RepDistiller's `PKT`), kept here: the KL terms are averaged over all
B×B entries (the paper sums them), the normalising sums include k = i (the paper leaves out the sample itself),
rows are divided by ‖x‖ + ε, and ε = 1e-7. The teacher side carries no gradient.

Defaults: the embedding feat[-1], b = 30000, r = 1, a = 0 (RepDistiller's `scripts/run_cifar_distill.sh`:
`--distill pkt -r 1 -a 0 -b 30000`).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=30000.0
"""

from __future__ import annotations

import torch
from pydantic import Field

from .base import Method, Needs, register_method
from .mixing import MixParams, label_and_kd
from .taps import embedding

EPS = 1e-7


def conditional_probabilities(f: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """(B, D) -> (B, B): row i is the cosine kernel to every sample, scaled to [0, 1] and normalised to sum 1."""
    x = f / (f.norm(dim=1, keepdim=True) + eps)
    k = (x @ x.t() + 1.0) / 2.0  # (B, B) in [0, 1]
    return k / k.sum(1, keepdim=True)


def pkt_loss(f_s: torch.Tensor, f_t: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    p, q = conditional_probabilities(f_t.flatten(1).detach(), eps), conditional_probabilities(f_s.flatten(1), eps)
    return (p * ((p + eps) / (q + eps)).log()).mean()


class PKTParams(MixParams):
    weight: float = Field(default=30000.0, ge=0.0)  # b


@register_method
class PKT(Method):
    name = "pkt"
    Params = PKTParams
    needs = Needs(teacher=True, features=("embedding",))
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time
    tasks = ("classification", "linear_probe")  # no label read with ce_weight 0 (cross-modal transfer)

    def __init__(self, params, ctx):
        super().__init__(params, ctx)

    def forward(self, batch, student, teacher, state):
        p: PKTParams = self.params
        loss = pkt_loss(embedding(student.features), embedding(teacher.features))
        return label_and_kd(p, batch, student.logits, teacher) | {"pkt": p.weight * loss}
