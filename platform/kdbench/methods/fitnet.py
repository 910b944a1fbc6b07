"""`fitnet`: FitNets: Hints for Thin Deep Nets — Romero, Ballas, Kahou, Chassang, Gatta & Bengio, ICLR 2015.

Objective (hint-based training, §2.2, Eq. 3), with the student's guided layer v_g = stage2, the teacher's hint
layer u_h = stage2 and a learned regressor r:

    L_HT = ‖u_h(x) − r(v_g(x))‖²,   loss = r·CE + a·KD + b·mean((u_h − r(v_g))²)

Reduction: the squared error averaged over every element (B·C·H·W), RepDistiller's `nn.MSELoss()`; the paper
writes ½‖·‖² summed over the hint — the benchmark's b = 100 absorbs the scale.

The regressor is RepDistiller's `ConvReg`, trained with the student: a 3×3 stride-2 conv when the student map is
2× larger, a 4×4 stride-2 transposed conv when it is 2× smaller, else a (1+ΔH)×(1+ΔW) conv; then BN and ReLU
(the paper's convolutional regressor, §2.2, chose the kernel the same way: no padding, sized to fit).

Schedule: the benchmark trains the hint jointly with CE in a single stage (default, `hint_epochs: 0`). The paper
first pre-trains the student up to the guided layer on L_HT alone, then trains the whole student with KD (§2.2,
Algorithm 1). `hint_epochs: N` (or `init_epochs: N`, the same field) runs that first stage as the engine's
initialisation stage, minimising the unweighted MSE (like RepDistiller's `init()` for its two-stage methods); the
main stage then keeps the mix above, so the paper's schedule is `{hint_epochs: N, weight: 0, kd_weight: …}`.

Defaults: hint layer feat[2] = stage2 (`--hint_layer 2`), b = 100, r = 1, a = 0 (RepDistiller's
`scripts/run_cifar_distill.sh`: `--distill hint -r 1 -a 0 -b 100`).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=100.0, init_epochs=0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import AliasChoices, Field, model_serializer
from torch import nn

from .base import Incompatible, Method, Needs, register_method
from .mixing import MixParams, label_and_kd

TAP = "stage2"  # RepDistiller's feat[2]


def hint_loss(student_hint: torch.Tensor, teacher_hint: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all B·C·H·W elements; the regressed student map and the teacher's agree in shape."""
    return F.mse_loss(student_hint, teacher_hint)


def regressor(s_shape: tuple[int, ...], t_shape: tuple[int, ...]) -> nn.Sequential:
    """Maps the student's (C_s, H_s, W_s) hint to the teacher's (C_t, H_t, W_t): conv, BN, ReLU."""
    (c_s, h_s, w_s), (c_t, h_t, w_t) = s_shape, t_shape
    if h_s == 2 * h_t:
        conv = nn.Conv2d(c_s, c_t, 3, stride=2, padding=1)
    elif 2 * h_s == h_t:
        conv = nn.ConvTranspose2d(c_s, c_t, 4, stride=2, padding=1)
    elif h_s >= h_t and w_s >= w_t:
        conv = nn.Conv2d(c_s, c_t, (1 + h_s - h_t, 1 + w_s - w_t))
    else:
        raise Incompatible(f"fitnet cannot regress a student hint of {h_s}×{w_s} onto a teacher hint of {h_t}×{w_t}")
    return nn.Sequential(conv, nn.BatchNorm2d(c_t), nn.ReLU())


class FitNetParams(MixParams):
    weight: float = Field(default=100.0, ge=0.0)  # b
    # The paper's hint pre-training stage, the engine's initialisation stage; 0: single stage. Given as
    # `hint_epochs` (its name in suites) or `init_epochs`; dumped as `hint_epochs`, so job ids stay unchanged.
    init_epochs: int = Field(default=0, ge=0, validation_alias=AliasChoices("hint_epochs", "init_epochs"))

    @model_serializer(mode="wrap")
    def _dump_as_hint_epochs(self, handler):
        out = handler(self)
        if "init_epochs" in out:
            out["hint_epochs"] = out.pop("init_epochs")
        return out


@register_method
class FitNet(Method):
    name = "fitnet"
    Params = FitNetParams
    needs = Needs(teacher=True, features=(TAP,))
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time
    tasks = ("classification", "linear_probe")  # no label read with ce_weight 0 (cross-modal transfer)

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        s_shape, t_shape = ctx.student_features.get(TAP), ctx.teacher_features.get(TAP)
        if s_shape is None or t_shape is None or len(s_shape) != 3 or len(t_shape) != 3:
            raise Incompatible(f"fitnet needs a (C, H, W) '{TAP}' tap on student and teacher, got {s_shape} and "
                             f"{t_shape}")
        self.regressor = regressor(s_shape, t_shape)

    def forward(self, batch, student, teacher, state):
        p: FitNetParams = self.params
        hint = hint_loss(self.regressor(student.features[TAP]), teacher.features[TAP].detach())
        if state.stage == "init":
            return {"hint": hint}
        return label_and_kd(p, batch, student.logits, teacher) | {"hint": p.weight * hint}
