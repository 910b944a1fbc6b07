"""`ft`: Paraphrasing Complex Network: Network Compression via Factor Transfer — Kim, Park & Kwak, NeurIPS 2018.

A paraphraser P (conv encoder → "factor" with k·C_T channels, conv-transpose decoder) is first trained
unsupervised to reconstruct the teacher's last-stage map x (initialisation stage, `init_epochs` epochs):

    L_rec = mean (P(x) − x)²                      (MSE, mean over all elements)

It is then frozen; a translator Q on the student's last-stage map learns, with the student, to produce the
teacher's factor F_T = P_enc(x) as F_S = Q(s). The main-stage loss is r·CE + a·KD + b·L_FT with

    benchmark (default, RepDistiller `distiller_zoo/FT.py`):  φ(F) = normalize(mean_c F², over H·W), (B, H·W)
                                                             L_FT = mean |φ(F_S) − φ(F_T)|
    paper (`variant: paper`):                                L_FT = mean |F_S/‖F_S‖₂ − F_T/‖F_T‖₂|, p = 1,
                                                             the factors flattened per sample, (B, k·C_T·H·W)

i.e. the benchmark compares an attention-style map of the factors, not the factors themselves. The paper
writes the p-norm per sample; the element mean (the authors' `nn.L1Loss`) divides it by a constant. Where the
two factors differ in size the larger is average-pooled to the smaller's (the reference does so too).

Modules (RepDistiller `models/util.py`): the paraphraser has 3 conv3×3 + 3 conv-transpose3×3 layers with
LeakyReLU(0.1) and no BN; the translator 3 conv3×3 layers with BN and LeakyReLU(0.1); factor channels
int(k·C_T). During the main stage no gradient reaches the paraphraser (so it stays fixed).

Defaults (benchmark): b = 200 (`scripts/run_cifar_distill.sh`, FT: `-a 0 -b 200`), k = 0.5, init_epochs = 30
(`train_student.py --init_epochs`). Deviations: the init stage uses the recipe's optimizer and learning rate
(RepDistiller uses a fresh SGD, with lr 0.01 for ResNet/WRN students), and the engine keeps the (untrained)
student in train mode then, so its BN statistics move (RepDistiller holds it in eval mode).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=200.0, rate=0.5, init_epochs=30,
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
from .taps import stages


def _stack(layer: type[nn.Module], channels: tuple[tuple[int, int], ...], bn: bool = False) -> nn.Sequential:
    """3×3 (transposed) convs, stride 1, padding 1, each followed by [BN and] LeakyReLU(0.1)."""
    mods: list[nn.Module] = []
    for c_in, c_out in channels:
        mods += [layer(c_in, c_out, 3, 1, 1), *([nn.BatchNorm2d(c_out)] if bn else []), nn.LeakyReLU(0.1)]
    return nn.Sequential(*mods)


class Paraphraser(nn.Module):
    def __init__(self, c: int, f: int) -> None:
        super().__init__()
        self.encoder = _stack(nn.Conv2d, ((c, c), (c, f), (f, f)))
        self.decoder = _stack(nn.ConvTranspose2d, ((f, f), (f, c), (c, c)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C_T, H, W) → the factor (B, F, H, W) and the reconstruction (B, C_T, H, W)."""
        factor = self.encoder(x)
        return factor, self.decoder(factor)


def ft_loss(factor_s: torch.Tensor, factor_t: torch.Tensor, variant: str = "benchmark") -> torch.Tensor:
    """L_FT between factors (B, F, H, W) and (B, F, H', W'); see the module docstring for the two variants."""
    size = (min(factor_s.shape[-2], factor_t.shape[-2]), min(factor_s.shape[-1], factor_t.shape[-1]))
    factor_s, factor_t = F.adaptive_avg_pool2d(factor_s, size), F.adaptive_avg_pool2d(factor_t, size)
    if variant == "benchmark":
        phi = lambda f: F.normalize(f.pow(2).mean(1).flatten(1))  # noqa: E731  (B, H·W)
    else:
        phi = lambda f: F.normalize(f.flatten(1))  # noqa: E731  (B, F·H·W)
    return (phi(factor_s) - phi(factor_t)).abs().mean()


class FTParams(MixParams):
    weight: float = Field(default=200.0, ge=0.0)  # b
    rate: float = Field(default=0.5, gt=0.0)  # k: factor channels = int(k · C_T)
    init_epochs: int = Field(default=30, gt=0)
    variant: Literal["benchmark", "paper"] = "benchmark"


@register_method
class FT(Method):
    name = "ft"
    Params = FTParams
    needs = Needs(teacher=True, features=("stage",))
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time

    def __init__(self, params: FTParams, ctx) -> None:
        super().__init__(params, ctx)
        t_shapes = stages(ctx.teacher_features)
        if not t_shapes:
            raise Incompatible("ft needs a single teacher's stage taps; this teacher gives none "
                             "(an ensemble has no features)")
        c_t, c_s = t_shapes[-1][0], stages(ctx.student_features)[-1][0]
        f = int(c_t * params.rate)  # factor channels
        if f < 1:
            raise Incompatible(f"ft: rate {params.rate} leaves no factor channels for {c_t} teacher channels")
        self.paraphraser = Paraphraser(c_t, f)
        self.translator = _stack(nn.Conv2d, ((c_s, c_s), (c_s, f), (f, f)), bn=True)

    def forward(self, batch, student, teacher, state):
        p: FTParams = self.params
        x = stages(teacher.features)[-1].detach()  # (B, C_T, H, W)
        if state.stage == "init":  # only the paraphraser learns: reconstruct the teacher's map
            return {"rec": F.mse_loss(self.paraphraser(x)[1], x)}
        with torch.no_grad():  # the paraphraser is frozen after its initialisation stage
            factor_t = self.paraphraser.encoder(x)
        factor_s = self.translator(stages(student.features)[-1])
        terms = label_and_kd(p, batch, student.logits, teacher)
        return terms | {"ft": p.weight * ft_loss(factor_s, factor_t, p.variant)}
