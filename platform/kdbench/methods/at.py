"""`at`: Paying More Attention to Attention — Zagoruyko & Komodakis, ICLR 2017.

Objective (activation-based attention transfer, §3.1, Eq. 2), per stage j = 1..N with activations A (B, C, H, W):

    Q^j = vec(mean_c A_c^p)  (B, H·W),   q^j = Q^j / ‖Q^j‖₂  (per sample)
    loss = r·CE + a·KD + b · Σ_j mean_{B, H·W} (q_s^j − q_t^j)²

Reduction: squared differences averaged over the batch and the H·W positions, summed over stages — the authors'
code and RepDistiller's `Attention`. The paper's Eq. 2 writes β/2 · Σ_j ‖q_s^j − q_t^j‖_p (a norm, not its
square, summed over the batch) and F(A) = Σ_c |A_c|^p; the channel sum and mean agree after normalisation.

Spatial sizes: when the student and teacher maps differ, the larger is average-pooled to the smaller
(RepDistiller pools to a square of the smaller height; here each side is pooled to the smaller H and W).

Defaults: p = 2, stages feat[1:-1] = stage1..N, b = 1000, r = 1, a = 0 (RepDistiller's
`scripts/run_cifar_distill.sh`: `--distill attention -r 1 -a 0 -b 1000`; the paper's β = 1000).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=1000.0, p=2.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Method, Needs, register_method
from .mixing import MixParams, label_and_kd
from .taps import paired_stage_maps, stages


def match_spatial(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool whichever map is larger to the smaller (H, W); equal maps pass through unchanged."""
    size = (min(f_s.shape[2], f_t.shape[2]), min(f_s.shape[3], f_t.shape[3]))
    pool = lambda f: f if tuple(f.shape[2:]) == size else F.adaptive_avg_pool2d(f, size)  # noqa: E731
    return pool(f_s), pool(f_t)


def attention_map(f: torch.Tensor, p: float) -> torch.Tensor:
    """(B, C, H, W) -> (B, H·W): the channel mean of |A|^p, L2-normalised per sample."""
    return F.normalize(f.abs().pow(p).mean(1).flatten(1), dim=1)


def at_loss(g_s: list[torch.Tensor], g_t: list[torch.Tensor], p: float = 2.0) -> torch.Tensor:
    """Σ over stages of mean((q_s − q_t)²); maps of different sizes are pooled to the smaller first."""
    total = 0.0
    for f_s, f_t in zip(g_s, g_t, strict=True):
        f_s, f_t = match_spatial(f_s, f_t)
        total = total + (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean()
    return total


class ATParams(MixParams):
    weight: float = Field(default=1000.0, ge=0.0)  # b (the paper's β)
    p: float = Field(default=2.0, gt=0.0)


@register_method
class AT(Method):
    name = "at"
    Params = ATParams
    needs = Needs(teacher=True, features=("stage",))  # stage1..N
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        s, t = paired_stage_maps(self.name, ctx.student_features, ctx.teacher_features)

    def forward(self, batch, student, teacher, state):
        p: ATParams = self.params
        g_t = [f.detach() for f in stages(teacher.features)]
        loss = at_loss(stages(student.features), g_t, p.p)
        return label_and_kd(p, batch, student.logits, teacher) | {"at": p.weight * loss}
