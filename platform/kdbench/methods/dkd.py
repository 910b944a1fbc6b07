"""`dkd`: Decoupled Knowledge Distillation — Zhao, Cui, Song, Qiu & Liang, CVPR 2022.

With p^T, p^S the teacher's and student's distributions at temperature T, t the label,
b = [p_t, 1 − p_t] the binary target/non-target split and p̂ the distribution over the non-target
classes renormalised (p̂_i = p_i / (1 − p_t), i ≠ t), the paper (§3) rewrites KD as
KD = TCKD + (1 − p^T_t)·NCKD and decouples the two terms:

    TCKD = KL(b^T ‖ b^S),   NCKD = KL(p̂^T ‖ p̂^S)
    L = r·CE(s, y) + w(e) · T² · (α·TCKD + β·NCKD),   w(e) = min(e / warmup, 1)

Reduction: each KL summed over its classes and averaged over the batch, times T² — mdistiller's
`dkd_loss` (`kl_div(..., size_average=False) * T**2 / B`). Its epoch e counts from 1
(mdistiller/engine/trainer.py), so here e = state.epoch + 1. mdistiller masks the target out of
NCKD by subtracting 1000 from its logit; this code drops the target entry exactly (−inf before the
softmax, then excluded from the sum) — the same value, since exp(−1000) underflows to 0.

Teachers: both terms are functions of the teacher's distribution at T only, so the target is
`teacher.log_probs(T)`: the teacher's softened distribution for one teacher (identical to
mdistiller, which softens the teacher's logits), the members' combined softened distribution for
an ensemble — the same target as `kd` uses, so that KD = TCKD + (1 − p^T_t)·NCKD holds here too.

Defaults: r = 1, α = 1, β = 8, T = 4, warm-up 20 epochs — mdistiller/engine/cfg.py (CFG.DKD); its
per-pair CIFAR configs lower β for some pairs (docs/methods.md). DKD replaces KD: it has no KD term.

Params defaults: ce_weight=1.0, alpha=1.0, beta=8.0, temperature=4.0, warmup=20
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Method, MethodParams, Needs, register_method


def dkd_loss(student_logits: torch.Tensor, teacher_log_probs: torch.Tensor, target: torch.Tensor,
             temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD), each T²·KL summed over classes, mean over the batch. teacher_log_probs: (B, K) at T.

    Written with `gather` and `masked_fill` only (no boolean-mask indexing, no `kl_div`), so it runs under
    `torch.vmap` (fused training, kdbench/engine/fused.py)."""
    batch, classes = student_logits.shape
    gt = torch.arange(classes, device=target.device) == target.unsqueeze(1)  # (B, K), True at the label
    log_q = F.log_softmax(student_logits / temperature, dim=1)  # (B, K)
    # Binary split in log space: [log p_t, log Σ_{i≠t} p_i], (B, 2).
    log_b_s = _split(log_q, target, gt)
    b_t = _split(teacher_log_probs, target, gt).exp()
    tckd = _kl_sum(b_t, log_b_s) / batch
    # Non-target distributions; the target entry becomes p = 0 and log q = 0 so it adds exactly 0.
    log_q_hat = F.log_softmax(log_q.masked_fill(gt, float("-inf")), dim=1).masked_fill(gt, 0.0)
    p_hat = F.softmax(teacher_log_probs.masked_fill(gt, float("-inf")), dim=1)  # (B, K), 0 at the target
    nckd = _kl_sum(p_hat, log_q_hat) / batch
    return tckd * temperature**2, nckd * temperature**2


def _split(log_p: torch.Tensor, target: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, K) log-probabilities -> (B, 2): [log p_t, log Σ_{i≠t} p_i]."""
    return torch.stack([log_p.gather(1, target.unsqueeze(1)).squeeze(1),
                        log_p.masked_fill(gt, float("-inf")).logsumexp(1)], dim=1)


def _kl_sum(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Σ p·(log p − log q) with 0·log 0 = 0: `F.kl_div(log_q, p, reduction="sum")`, written out."""
    return (torch.xlogy(p, p) - p * log_q).sum()


def warmup_factor(epoch: int, warmup: int) -> float:
    """mdistiller's min(epoch / warmup, 1) with its 1-based epoch; `epoch` is kdbench's 0-based one."""
    return 1.0 if warmup == 0 else min((epoch + 1) / warmup, 1.0)


class DKDParams(MethodParams):
    ce_weight: float = Field(default=1.0, ge=0.0)
    alpha: float = Field(default=1.0, ge=0.0)
    beta: float = Field(default=8.0, ge=0.0)
    temperature: float = Field(default=4.0, gt=0.0)
    warmup: int = Field(default=20, ge=0)  # epochs; 0: no warm-up


@register_method
class DKD(Method):
    name = "dkd"
    Params = DKDParams
    needs = Needs(teacher=True)

    @classmethod
    def schedule_warning(cls, params, epochs: int) -> str | None:
        if params.warmup >= epochs > 0:
            return (f"warm-up of {params.warmup} epochs is not shorter than the recipe's {epochs}: the KD terms "
                    f"never reach full weight (mdistiller's 20 assumes 240 epochs; set `warmup:` lower)")
        return None

    def forward(self, batch, student, teacher, state):
        p: DKDParams = self.params
        target = teacher.log_probs(p.temperature).detach()
        tckd, nckd = dkd_loss(student.logits, target, batch.y, p.temperature)
        w = warmup_factor(state.epoch, p.warmup)
        return {"ce": p.ce_weight * F.cross_entropy(student.logits, batch.y),
                "tckd": w * p.alpha * tckd, "nckd": w * p.beta * nckd}
