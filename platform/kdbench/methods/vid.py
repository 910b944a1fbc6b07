"""`vid`: Variational Information Distillation for Knowledge Transfer — Ahn, Hu, Damianou, Lawrence & Dai,
CVPR 2019.

Objective (§3: maximise a variational lower bound on the mutual information between teacher and student stage
activations, with a Gaussian q(t | s) whose mean μ(s) is a regressor and whose variance is learned per channel):

    σ_c² = softplus(α_c) + ε,   −log q(t | s) = Σ_{c,h,w} [ log σ_c + (t_{c,h,w} − μ_{c,h,w}(s))² / (2σ_c²) ] + const
    L = Σ_stages mean_{B,C,H,W} ½ [ (t − μ(s))² / σ_c² + log σ_c² ],    loss = r·CE + a·KD + b·L

Reduction: the negative log-likelihood (without its constant) averaged over B·C·H·W per stage, summed over the
stages — RepDistiller's `VIDLoss`; the paper sums over C·H·W. μ is three 1×1 convs without bias (student →
teacher channels → teacher channels → teacher channels, ReLU between), and α_c starts at softplus⁻¹(5 − ε) so that
the initial variance is 5.0. Both are trained with the student, as in RepDistiller (mdistiller never trains them).

Spatial sizes: when the student and teacher maps differ, the larger is average-pooled to the smaller before the
regressor (RepDistiller pools to a square of the smaller height; here to the smaller H and W).

Defaults: stages feat[1:-1] = stage1..N, initial variance 5.0, ε = 1e-5, b = 1, r = 1, a = 0 (RepDistiller's
`VIDLoss(init_pred_var=5.0, eps=1e-5)` and `scripts/run_cifar_distill.sh`: `--distill vid -r 1 -a 0 -b 1`).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=1.0, init_var=5.0, eps=1e-05
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .at import match_spatial
from .base import Method, Needs, register_method
from .mixing import MixParams, label_and_kd
from .taps import paired_stage_maps, stages


def vid_loss(mean: torch.Tensor, target: torch.Tensor, log_scale: torch.Tensor, eps: float) -> torch.Tensor:
    """mean(½((t − μ)²/σ² + log σ²)) over B·C·H·W; μ, t (B, C, H, W), per-channel α = log_scale (C,)."""
    var = (F.softplus(log_scale) + eps).view(1, -1, 1, 1)  # (1, C, 1, 1)
    return (0.5 * ((mean - target).pow(2) / var + var.log())).mean()


def regressor(c_s: int, c_t: int) -> nn.Sequential:
    """μ(s): 1×1 convs c_s → c_t → c_t → c_t without bias, ReLU between (the hidden width is the teacher's)."""
    conv = lambda i, o: nn.Conv2d(i, o, 1, bias=False)  # noqa: E731
    return nn.Sequential(conv(c_s, c_t), nn.ReLU(), conv(c_t, c_t), nn.ReLU(), conv(c_t, c_t))


class VIDParams(MixParams):
    weight: float = Field(default=1.0, ge=0.0)  # b
    init_var: float = Field(default=5.0, gt=0.0)  # σ² at the start
    eps: float = Field(default=1e-5, gt=0.0)  # variance floor


@register_method
class VID(Method):
    name = "vid"
    Params = VIDParams
    needs = Needs(teacher=True, features=("stage",))  # stage1..N
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        s, t = paired_stage_maps(self.name, ctx.student_features, ctx.teacher_features)
        alpha = math.log(math.expm1(params.init_var - params.eps))  # softplus⁻¹(init_var − ε)
        self.regressors = nn.ModuleList(regressor(a[0], b[0]) for a, b in zip(s, t, strict=True))
        self.log_scales = nn.ParameterList(nn.Parameter(torch.full((b[0],), alpha)) for b in t)

    def forward(self, batch, student, teacher, state):
        p: VIDParams = self.params
        loss = 0.0
        for f_s, f_t, mu, alpha in zip(stages(student.features), stages(teacher.features), self.regressors,
                                       self.log_scales, strict=True):
            f_s, f_t = match_spatial(f_s, f_t.detach())
            loss = loss + vid_loss(mu(f_s), f_t, alpha, p.eps)
        return label_and_kd(p, batch, student.logits, teacher) | {"vid": p.weight * loss}
