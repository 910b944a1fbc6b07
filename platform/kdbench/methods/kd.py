"""`kd`: Distilling the Knowledge in a Neural Network — Hinton, Vinyals & Dean, NIPS 2014 workshop (2015).

Objective (§2), with student logits s, teacher distribution p_T at temperature T (for an
ensemble, the arithmetic or geometric mean of its members' softened distributions, §2/§4):

    L = (1 − α) · CE(softmax(s), y)  +  α · T² · KL(p_T ‖ softmax(s / T))

The T² factor keeps the soft-target gradients' magnitude independent of T (§2.1).
Reduction: KL summed over classes and averaged over the batch ("batchmean"), CE averaged over
the batch — the reduction of the CRD/DKD benchmark code (RepDistiller's DistillKL), not the
mean over classes some codebases use.

Early-stopped KD (ESKD; Cho & Hariharan, "On the Efficacy of Knowledge Distillation", ICCV 2019, §5):
with `stop_epoch: k` the distillation term is used in main-stage epochs 1..k only; from epoch k + 1
on the loss is plain cross-entropy, CE(softmax(s), y) with weight 1 (the `kd` term reports 0).
Default None: never stops (kdbench/jobs/identity.py keeps KD's job ids from before the option).

Token-level outputs (`masked_lm`, logits (B, L, V)): the same objective per token — the task's supervised loss
(cross-entropy over the masked positions) weighted 1 − α, and α · T² · KL(p_T ‖ q_T) averaged over the non-padding
tokens (DistilBERT's `kd_scope: tokens`; = `distilbert` with alpha_kd α, alpha_mlm 1 − α, alpha_cos 0 and no layer
copy). It reads its teacher through the KL alone, so a lumped top-k teacher cache serves it.

Defaults: T = 4, α = 0.9 — the CRD benchmark's KD settings (Tian et al. 2020, RepDistiller:
`-r 0.1 -a 0.9 --kd_T 4`). Hinton et al. used T = 20 on MNIST; set it in the suite.

Params defaults: temperature=4.0, alpha=0.9, stop_epoch=None
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from kdbench.outputs import TeacherOutput

from .base import Method, MethodParams, Needs, register_method


def kd_loss(student_logits: torch.Tensor, teacher_log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(p_T ‖ q_T), summed over classes, mean over the batch. teacher_log_probs: (B, K) at T."""
    log_q = F.log_softmax(student_logits / temperature, dim=1)  # (B, K)
    # = F.kl_div(log_q, teacher_log_probs, reduction="batchmean", log_target=True), written out because
    # kl_div has no vmap batching rule (fused training, kdbench/engine/fused.py, would loop per model).
    kl = (teacher_log_probs.exp() * (teacher_log_probs - log_q)).sum(1).mean()
    return kl * temperature**2


def kd_term(student_logits: torch.Tensor, teacher: TeacherOutput, temperature: float) -> torch.Tensor:
    """T² · KL(p_T ‖ q_T), mean over output positions: `kd_loss` on the teacher's full distribution, or, for a
    teacher read from a lumped top-k cache, the KL over its k classes plus one tail bucket (kdbench/outputs.py)."""
    if teacher.topk is not None:
        return teacher.kl(student_logits, temperature).mean() * temperature**2
    return kd_loss(student_logits, teacher.log_probs(temperature).detach(), temperature)


TOKEN_TASKS = ("masked_lm",)  # outputs (B, L, V): the loss per token (see the module's docstring)


def kd_tokens(student_logits: torch.Tensor, teacher: TeacherOutput, tokens: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """T² · KL(p_T ‖ q_T) per token (dense, or over a lumped cache's top-k and tail), mean over `tokens` (B, L)."""
    kl = teacher.kl(student_logits, temperature)  # (B, L)
    return (kl * tokens).sum() / tokens.sum().clamp(min=1) * temperature**2


class KDParams(MethodParams):
    temperature: float = Field(default=4.0, gt=0.0)
    alpha: float = Field(default=0.9, ge=0.0, le=1.0)
    stop_epoch: int | None = Field(default=None, gt=0)  # ESKD: plain CE after this main-stage epoch



@register_method
class KD(Method):
    name = "kd"
    Params = KDParams
    needs = Needs(teacher=True)
    tasks = ("classification", "sequence_classification", "masked_lm")
    kl_temperature = "temperature"  # reads its teacher through the KL alone: a lumped top-k cache serves it

    def forward(self, batch, student, teacher, state):
        p: KDParams = self.params
        if self.ctx.task.name in TOKEN_TASKS:
            return self._per_token(batch, student, teacher, state)
        if p.stop_epoch is not None and state.stage == "main" and state.epoch >= p.stop_epoch:
            ce = F.cross_entropy(student.logits, batch.y)
            return {"ce": ce, "kd": ce.new_zeros(())}  # same terms every epoch, for the epoch metrics
        return {
            "ce": (1.0 - p.alpha) * F.cross_entropy(student.logits, batch.y),
            "kd": p.alpha * kd_term(student.logits, teacher, p.temperature),
        }

    def _per_token(self, batch, student, teacher, state):
        from kdbench.zoo.datasets.tokenize import PAD_ID

        p: KDParams = self.params
        term = self.ctx.task.loss_term  # `mlm`: cross-entropy over the masked positions
        ce = self.ctx.task.loss(student.logits, batch.y)
        if p.stop_epoch is not None and state.stage == "main" and state.epoch >= p.stop_epoch:
            return {term: ce, "kd": ce.new_zeros(())}
        return {term: (1.0 - p.alpha) * ce,
                "kd": p.alpha * kd_tokens(student.logits, teacher, (batch.x != PAD_ID).float(), p.temperature)}
