"""`vs`: Variational Student — Hegde, Prasad, Hebbalaguppe & Kumar, "Variational Student: Learning Compact and
Sparser Networks in Knowledge Distillation Framework", ICASSP 2020 (arXiv 1910.12061).

A sparse student learned by variational inference inside KD, the teacher fixed. The student is a sparse
variational dropout network (Molchanov et al. 2017; zoo/models/sparse_vd.py: `svd_mlp`, `svd_vgg`), which offers
`variational_kl()`. With student logits s, teacher logits t, temperature T, N training samples:

    L = CE(softmax(s), y)
        + λ_T · c · T² · KL_dir(softmax(t/T), softmax(s/T))          (`kd`; batchmean, as methods/kd.py)
        + λ_V · β(epoch) · KL_VD(q(W_S) ‖ p(W_S)) / N                 (`vd`: the SGVB per-sample ELBO term)
        + λ_g · Σ_layers Σ_groups g max(max|W_T[g]|, max|W_S[g]|)     (`bs`: block sparsity, ℓ1 over ℓ∞ groups)

- KL_dir: `kl_direction` "forward" = KL(p_T ‖ q_S) (Hinton's), "reverse" = KL(q_S ‖ p_T).
- β: KL warm-up, β = min(1, (epoch + 1) / warmup_epochs) (1 when warmup_epochs = 0); with 50 epochs it is
  Molchanov et al.'s schedule (0.02 more per epoch).
- Block sparsity: the teacher's and the student's weight tensors (every parameter named `weight` with ≥ 2
  dimensions: linear and conv weights; the student's VD θ) are paired in module order; the layer counts must be
  equal. A group g is index g along `group_axis` ("out": an output neuron / filter, "in": an input neuron /
  channel) of both tensors, "concatenated": its value is the max-abs over the teacher's and the student's entries
  of that group. The teacher is fixed, so a group's gradient reaches the student only where the student's max
  exceeds the teacher's. Where the two widths along the axis differ, `group_mismatch` "refuse" (the paper pairs
  equal architectures) makes the pair `Incompatible`; "pad" keeps the common groups and adds the longer tensor's
  extra groups alone (as if the shorter were zero-padded).

Sparse alone (Molchanov's sparse VD) is this method with lambda_t = 0 and lambda_g = 0: CE + the VD term.
The paper's text could not be read here: the objective is taken from secondary sources, and every uncertain
choice is a parameter: the KL direction, c ∈ {1, 2} (T² or 2T²), the group axis, the width mismatch, the warm-up
and the weights λ. The pruning threshold (log α ≥ 3) is the student architecture's `threshold`.
Defaults: T = 4 and forward KL with c = 1 (the CRD benchmark's KD scaling), λ_V = 1 (the ELBO), λ_T = 1,
λ_g = 1e-4, output-neuron groups, 50 warm-up epochs — chosen here, not read from the paper.

Params defaults: temperature=4.0, lambda_t=1.0, c=1, kl_direction="forward", lambda_v=1.0, warmup_epochs=50,
lambda_g=0.0001, group_axis="out", group_mismatch="refuse"
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .base import Incompatible, Method, MethodParams, Needs, register_method


class VSParams(MethodParams):
    temperature: float = Field(default=4.0, gt=0.0)
    lambda_t: float = Field(default=1.0, ge=0.0)  # λ_T: the distillation term
    c: Literal[1, 2] = 1  # the distillation term's scale c·T²
    kl_direction: Literal["forward", "reverse"] = "forward"
    lambda_v: float = Field(default=1.0, ge=0.0)  # λ_V: the variational KL
    warmup_epochs: int = Field(default=50, ge=0)
    lambda_g: float = Field(default=1e-4, ge=0.0)  # λ_g: the block-sparse regulariser
    group_axis: Literal["out", "in"] = "out"
    group_mismatch: Literal["refuse", "pad"] = "refuse"


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
               direction: str) -> torch.Tensor:
    """KL between the softened distributions, summed over classes, mean over the batch."""
    log_q = F.log_softmax(student_logits / temperature, dim=1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=1)
    if direction == "forward":
        return (log_p.exp() * (log_p - log_q)).sum(1).mean()
    return (log_q.exp() * (log_q - log_p)).sum(1).mean()


def layer_weights(model: nn.Module) -> list[torch.Tensor]:
    """The model's linear and conv weights in module order: parameters named `weight` with ≥ 2 dimensions."""
    return [p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] == "weight" and p.dim() >= 2]


def group_max(w: torch.Tensor, axis: str) -> torch.Tensor:
    """Max-abs of each group: index g along dim 0 ("out") or dim 1 ("in"), over every other dimension."""
    w = w if axis == "out" else w.transpose(0, 1)
    return w.abs().flatten(1).amax(1)


def block_sparsity(teacher_max: list[torch.Tensor], student: list[torch.Tensor], axis: str) -> torch.Tensor:
    """Σ over layers and groups of max(teacher group max, student group max); unequal group counts: the common
    groups paired, the longer tensor's extra groups alone."""
    total = student[0].new_zeros((), dtype=torch.float32)
    for t, w in zip(teacher_max, student, strict=True):
        s = group_max(w.float(), axis)
        k = min(t.numel(), s.numel())
        total = total + torch.maximum(t[:k], s[:k]).sum() + t[k:].sum() + s[k:].sum()
    return total


@register_method
class VS(Method):
    name = "vs"
    Params = VSParams
    needs = Needs(teacher=True, weights=True, student="variational_kl")
    fusable = False

    def __init__(self, params: VSParams, ctx) -> None:
        super().__init__(params, ctx)
        self._teacher_groups = 0
        if params.lambda_g > 0:  # the block-sparse term pairs the networks' layers
            self._pair(layer_weights(ctx.teacher), layer_weights(ctx.student), params)

    def _pair(self, teacher: list[torch.Tensor], student: list[torch.Tensor], p: VSParams) -> None:
        if len(teacher) != len(student):
            raise Incompatible(f"vs block sparsity pairs layers: the teacher has {len(teacher)} weight layers, the "
                               f"student {len(student)}")
        dim = 0 if p.group_axis == "out" else 1
        for i, (t, s) in enumerate(zip(teacher, student, strict=True)):
            if t.shape[dim] != s.shape[dim] and p.group_mismatch == "refuse":
                raise Incompatible(f"vs block sparsity: weight layer {i} has {t.shape[dim]} teacher and "
                                   f"{s.shape[dim]} student groups along '{p.group_axis}' (group_mismatch: pad "
                                   "pairs the common groups)")
            # The teacher is frozen: its group maxima are constants (not saved: rebuilt from the teacher).
            self.register_buffer(f"teacher_max{i}", group_max(t.detach().float(), p.group_axis), persistent=False)
        self._teacher_groups = len(teacher)

    @classmethod
    def schedule_warning(cls, params, epochs: int) -> str | None:
        if params.lambda_v > 0 and params.warmup_epochs >= epochs > 0:
            return (f"KL warm-up of {params.warmup_epochs} epochs is not shorter than the recipe's {epochs}: the "
                    "variational KL never reaches full weight, so the student stays denser (set `warmup_epochs:`)")
        return None

    def warmup(self, epoch: int) -> float:
        w = self.params.warmup_epochs
        return 1.0 if w == 0 else min(1.0, (epoch + 1) / w)

    def forward(self, batch, student, teacher, state):
        p: VSParams = self.params
        s = student.logits.float()
        terms = {"ce": F.cross_entropy(s, batch.y)}
        terms["kd"] = (p.lambda_t * p.c * p.temperature**2
                       * distill_kl(s, teacher.member_logits[0].detach().float(), p.temperature, p.kl_direction))
        kl = self.ctx.student.variational_kl()
        terms["vd"] = p.lambda_v * self.warmup(state.epoch) * kl / self.ctx.num_train
        if self._teacher_groups:
            t_max = [getattr(self, f"teacher_max{i}") for i in range(self._teacher_groups)]
            terms["bs"] = p.lambda_g * block_sparsity(t_max, layer_weights(self.ctx.student), p.group_axis)
        else:
            terms["bs"] = s.new_zeros(())
        return terms
