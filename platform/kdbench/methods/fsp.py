"""`fsp`: A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer Learning —
Yim, Joo, Bae & Kim, CVPR 2017.

The "flow of solution procedure" between two feature maps F1 (B, C1, H, W) and F2 (B, C2, H, W) of one
network is their Gram matrix over positions (the paper's Eq. 1):

    G(F1, F2)_{b,i,j} = Σ_{h,w} F1_{b,i,h,w} · F2_{b,j,h,w} / (H·W)

and the student learns the teacher's matrices for consecutive tap pairs (Eq. 2 with equal λ_i):

    L_init = b · Σ_k mean_{b,i,j} (G_k^S − G_k^T)²

Benchmark form (RepDistiller `distiller_zoo/FSP.py`, `helper/pretrain.py`): the taps are
[stem, stage1, …, stageN] (its `feat[:-1]`), the larger of two consecutive maps is average-pooled to the
smaller's size, and each term is a mean over the batch and the matrix entries (the paper writes a squared
L2 norm per sample; the mean divides each term by C1·C2, which reweights the pairs). The paper pairs the
first and last maps of each stage (same resolution) instead. FSP needs equal student and teacher channels
at every tap (raises otherwise, as the reference does).

FSP acts only in an initialisation stage of `init_epochs` epochs before the recipe's: there the student's
feature layers learn from L_init alone (the classifier gets no gradient). In the main stage it adds nothing
of its own — the loss is r·CE + a·KD (the benchmark's `loss_kd = 0` for `fsp`).

Defaults (benchmark): init_epochs = 30 (`train_student.py --init_epochs`), b = 1 (the init loop sums the
terms unweighted; `-b 50` in `scripts/run_cifar_distill.sh` multiplies the zero main-stage term).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=1.0, init_epochs=30
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Incompatible, Method, Needs, register_method
from .mixing import MixParams, label_and_kd
from .taps import stages


def fsp_matrix(bottom: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """(B, C1, H1, W1), (B, C2, H2, W2) → (B, C1, C2), the larger map pooled to the smaller's size first."""
    size = (min(bottom.shape[-2], top.shape[-2]), min(bottom.shape[-1], top.shape[-1]))
    bottom, top = F.adaptive_avg_pool2d(bottom, size), F.adaptive_avg_pool2d(top, size)
    return torch.einsum("bihw,bjhw->bij", bottom, top) / (size[0] * size[1])


def fsp_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Σ over consecutive tap pairs of mean (G_s − G_t)²; taps in network order, equal channels per side."""
    total = student[0].new_zeros(())
    for k in range(len(student) - 1):
        g_s = fsp_matrix(student[k], student[k + 1])
        g_t = fsp_matrix(teacher[k], teacher[k + 1])
        total = total + (g_s - g_t).pow(2).mean()
    return total


def fsp_taps(taps: dict) -> list:
    return [taps["stem"], *stages(taps)]


class FSPParams(MixParams):
    weight: float = Field(default=1.0, ge=0.0)  # b, on the init-stage loss
    init_epochs: int = Field(default=30, gt=0)


@register_method
class FSP(Method):
    name = "fsp"
    Params = FSPParams
    needs = Needs(teacher=True, features=("stem", "stage"))
    fusable = False  # reads feature taps (and owns modules or state): trained one job at a time

    def __init__(self, params: FSPParams, ctx) -> None:
        super().__init__(params, ctx)
        if not ctx.teacher_features:
            raise Incompatible("fsp needs a single teacher's feature taps; this teacher gives none "
                             "(an ensemble has no features)")
        s_ch = [s[0] for s in fsp_taps(ctx.student_features)]
        t_ch = [t[0] for t in fsp_taps(ctx.teacher_features)]
        if s_ch != t_ch:
            raise Incompatible(f"fsp needs equal channels at every tap [stem, stage1, …]: student {s_ch}, "
                             f"teacher {t_ch}")

    def forward(self, batch, student, teacher, state):
        p: FSPParams = self.params
        if state.stage == "main":  # FSP's own term is zero here: r·CE + a·KD only
            return label_and_kd(p, batch, student.logits, teacher)
        t_taps = [t.detach() for t in fsp_taps(teacher.features)]
        return {"fsp": p.weight * fsp_loss(fsp_taps(student.features), t_taps)}
