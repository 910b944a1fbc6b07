"""`ab`: Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden Neurons —
Heo, Lee, Yun & Choi, AAAI 2019.

What transfers is *which* hidden neurons fire — the sign of each pre-activation — not how strongly. The
paper's activation-transfer loss counts disagreeing signs; it is not differentiable, so training uses its
piecewise-differentiable alternative with margin μ. Per stage i, with the teacher's pre-activation T_i and
the student's S_i mapped to the teacher's channels by a connector r_i (1×1 conv + BN):

    ℓ_i = Σ_elements  1[T_i > 0] · relu(μ − r_i(S_i))²  +  1[T_i ≤ 0] · relu(μ + r_i(S_i))²

and the initialisation-stage objective of the benchmark (RepDistiller `distiller_zoo/AB.py`, `ABLoss`) is

    L_init = b · Σ_{i=0}^{n−1} 2^(i−n+1) · (3 / 1000) · ℓ_i / B

(n stages; the last stage weighs 1, each earlier one half the next; summed over elements, divided by the
batch size B, scaled by 3/1000). AB acts only in an initialisation stage of `init_epochs` epochs, before the
recipe's: there the student's feature layers and the connectors learn from L_init alone (the classifier gets
no gradient). In the main stage AB adds nothing of its own — the loss is r·CE + a·KD (the benchmark's
`loss_kd = 0` for `abound`) and the connectors are no longer trained.

Defaults (benchmark): init_epochs = 30 (`train_student.py --init_epochs`), μ = 1 (`ABLoss(margin=1.0)`),
b = 1 (the reference's init loop sums the stage losses unweighted, `helper/pretrain.py`; its `-b 1` in
`scripts/run_cifar_distill.sh` multiplies the zero main-stage term). `variant: benchmark` keeps the identity
as the connector where a student stage already has the teacher's shape (RepDistiller's `Connector`);
`variant: paper` always uses 1×1 conv + BN, as the paper does. Where the spatial sizes differ, the larger map
is average-pooled to the smaller (the reference uses a strided or transposed conv there instead).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=1.0, margin=1.0, init_epochs=30,
variant='benchmark'
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .base import Incompatible, Method, Needs, register_method
from .mixing import MixParams, label_and_kd
from .taps import preacts


def ab_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], margin: float) -> torch.Tensor:
    """Σ_i 2^(i−n+1)·(3/1000)·ℓ_i/B over stages; student maps already through their connectors, (B, C, H, W) each."""
    n, batch = len(student), student[0].shape[0]
    total = student[0].new_zeros(())
    for i, (s, t) in enumerate(zip(student, teacher, strict=True)):
        fires = (t > 0).to(s.dtype)  # the teacher's activation pattern, (B, C, H, W)
        # squared hinge: push the student above +μ where the teacher fires, below −μ where it does not
        hinge = fires * F.relu(margin - s).pow(2) + (1 - fires) * F.relu(margin + s).pow(2)
        total = total + 2.0 ** (i - n + 1) * hinge.sum() / batch * 3 / 1000
    return total


def same_size(s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool whichever map is larger to the other's (H, W); equal sizes pass through."""
    size = (min(s.shape[-2], t.shape[-2]), min(s.shape[-1], t.shape[-1]))
    pool = lambda x: x if tuple(x.shape[-2:]) == size else F.adaptive_avg_pool2d(x, size)  # noqa: E731
    return pool(s), pool(t)


class ABParams(MixParams):
    weight: float = Field(default=1.0, ge=0.0)  # b, on the init-stage loss
    margin: float = Field(default=1.0, gt=0.0)  # μ
    init_epochs: int = Field(default=30, gt=0)
    variant: Literal["benchmark", "paper"] = "benchmark"


def connector(s: tuple[int, ...], t: tuple[int, ...], always: bool) -> nn.Module:
    """Student (C_s, H, W) → teacher channels C_t; the benchmark skips it when the shapes already match."""
    if tuple(s) == tuple(t) and not always:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(s[0], t[0], 1, bias=False), nn.BatchNorm2d(t[0]))


@register_method
class AB(Method):
    name = "ab"
    Params = ABParams
    needs = Needs(teacher=True, features=("preact",))
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time

    def __init__(self, params: ABParams, ctx) -> None:
        super().__init__(params, ctx)
        s_shapes, t_shapes = preacts(ctx.student_features), preacts(ctx.teacher_features)
        if not t_shapes:
            raise Incompatible("ab needs a single teacher's pre-activation taps; this teacher gives none "
                             "(an ensemble has no features)")
        if len(s_shapes) != len(t_shapes):
            raise Incompatible(f"ab pairs stages one to one: student has {len(s_shapes)}, teacher {len(t_shapes)}")
        always = params.variant == "paper"
        self.connectors = nn.ModuleList(connector(s, t, always) for s, t in zip(s_shapes, t_shapes, strict=True))

    def forward(self, batch, student, teacher, state):
        p: ABParams = self.params
        if state.stage == "main":  # AB's own term is zero here: r·CE + a·KD only
            return label_and_kd(p, batch, student.logits, teacher)
        pairs = [same_size(c(s), t.detach()) for c, s, t in
                 zip(self.connectors, preacts(student.features), preacts(teacher.features), strict=True)]
        return {"ab": p.weight * ab_loss([s for s, _ in pairs], [t for _, t in pairs], p.margin)}
