"""What a teacher hands its student: `TeacherOutput`, and how an ensemble's members are combined.

Combining an ensemble's predictive distributions (Hinton et al. 2015, §2 and §4).

For member logits z_m (m = 1..M) at temperature T, with q_m = softmax(z_m / T):

- arithmetic mean:  p = (1/M) Σ_m q_m
- geometric mean:   p ∝ Π_m q_m^(1/M), renormalised over classes

Both are returned as log-probabilities, computed in log space for stability.

A teacher read from a lumped top-k cache (`teacher_cache: {topk: k, tail: lumped}`, kdbench/teachers/cache.py)
hands over `TopK` instead of logits: per output position (a sample, or each token of a sequence) its k
largest logits at the training temperature T, their indices and the log-normaliser lse = logsumexp(z / T).
Its distribution is p_i = exp(z_i / T − lse) on the k indices plus ONE tail bucket of mass
P_tail = 1 − Σ_i p_i; `topk_kl` compares the student's q = softmax(s / T) with it on the same k + 1
outcomes, Q_tail = 1 − Σ_i q_i (one pass over the vocabulary, for the student's log-normaliser).
Lumping the tail is the KL of the coarsened distributions, so (log-sum inequality)

    KL(p ‖ q) − KL_lumped = P_tail · KL(p_tail / P_tail ‖ q_tail / Q_tail)  ≥ 0,

exact when the tail is empty or one class (k ≥ V − 1), and small when P_tail is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

Combine = Literal["arithmetic", "geometric"]


def ensemble_log_probs(member_logits: torch.Tensor, temperature: float, combine: Combine) -> torch.Tensor:
    """(M, B, K) member logits -> (B, K) log-probabilities of the combined distribution."""
    log_q = torch.log_softmax(member_logits / temperature, dim=-1)  # (M, B, K)
    if member_logits.shape[0] == 1 and combine == "arithmetic":
        # One teacher (the default combine): its own distribution, bit-identical to the formula below (a logsumexp
        # over one element returns it exactly, and log 1 = 0) without its extra passes over (B, K).
        return log_q[0]
    if combine == "arithmetic":
        return torch.logsumexp(log_q, dim=0) - math.log(member_logits.shape[0])
    if combine == "geometric":
        return torch.log_softmax(log_q.mean(dim=0), dim=-1)
    raise ValueError(f"unknown ensemble combine '{combine}' (arithmetic or geometric)")


@dataclass(frozen=True)
class TopK:
    """A teacher's distribution at `temperature`: top-k logits z/T (…, k), their int64 indices (…, k) and
    the log-normaliser logsumexp(z/T) (…,) over the whole vocabulary; … = (B,) or (B, L)."""

    logits: torch.Tensor
    index: torch.Tensor
    lse: torch.Tensor
    temperature: float

    @classmethod
    def of(cls, logits: torch.Tensor, k: int, temperature: float) -> TopK:
        """The top-k of full (…, V) logits at `temperature` (k ≤ V)."""
        z = logits.float() / temperature
        top = z.topk(min(k, z.shape[-1]), dim=-1)  # largest first
        return cls(top.values, top.indices, torch.logsumexp(z, dim=-1), temperature)

    def select(self, mask: torch.Tensor) -> TopK:
        """The positions where the boolean `mask` (…,) is true, as rows: (N, k)."""
        return TopK(self.logits[mask], self.index[mask], self.lse[mask], self.temperature)

    def log_probs(self) -> torch.Tensor:
        """(…, k) the teacher's log-probabilities at T on its k indices."""
        return self.logits - self.lse.unsqueeze(-1)


def topk_kl(student_logits: torch.Tensor, teacher: TopK, temperature: float) -> torch.Tensor:
    """(…,) KL(p_T ‖ q_T) per position over the teacher's k indices plus one tail bucket (see the module).

    student_logits: (…, V) with the teacher's leading shape; `temperature` must be the cache's T."""
    if temperature != teacher.temperature:
        raise ValueError(f"this teacher's top-k outputs were cached at temperature {teacher.temperature}; the "
                         f"method asks for {temperature}: the cache's T must be the method's")
    z = student_logits / temperature
    lse_s = torch.logsumexp(z, dim=-1, keepdim=True)  # (…, 1)
    log_q = z.gather(-1, teacher.index) - lse_s  # (…, k)
    log_p = teacher.log_probs()  # (…, k)
    head = (log_p.exp() * (log_p - log_q)).sum(-1)
    if teacher.index.shape[-1] >= z.shape[-1]:  # k = V: no tail (its log-mass −inf would give NaN gradients)
        return head
    # Q_tail = 1 − Σ_i q_i from k-sized terms (no second pass over V). Exact to fp32 rounding (~1e-7 absolute);
    # a student tail below that is clamped, where the head term still pulls mass off the k classes.
    q_tail = -torch.expm1(torch.logsumexp(log_q, dim=-1))  # (…,)
    log_q_tail = q_tail.clamp_min(1e-30).log()
    p_tail = (-torch.expm1(torch.logsumexp(log_p, dim=-1))).clamp_min(0.0)  # (…,) 1 − Σ p_i, rounding ≥ 0
    # 0 · log(0 / ·) = 0: a tail the teacher left empty contributes nothing.
    tail = torch.where(p_tail > 0, p_tail * (p_tail.clamp_min(1e-30).log() - log_q_tail), torch.zeros_like(p_tail))
    return head + tail


@dataclass(frozen=True)
class TeacherOutput:
    """A single teacher (M = 1) or an ensemble's members, with how to combine them."""

    member_logits: torch.Tensor  # (M, B, K)
    combine: Combine = "arithmetic"
    features: dict[str, torch.Tensor] = field(default_factory=dict)  # single teachers only
    # Set by a lumped top-k cache (one teacher): the outputs are then `topk` alone (member_logits is (1, B, 0)),
    # read through `kl`; `log_probs` is refused, since the full distribution is not there.
    topk: TopK | None = None

    def log_probs(self, temperature: float = 1.0) -> torch.Tensor:
        """(B, K) log-probabilities of the (combined) teacher at `temperature`."""
        if self.topk is not None:
            raise ValueError("this teacher comes from a lumped top-k cache: it has no full distribution, only "
                             "`kl` (teacher_cache.tail: lumped serves methods that declare `kl_temperature`)")
        return ensemble_log_probs(self.member_logits, temperature, self.combine)

    def kl(self, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """(…,) KL(p_T ‖ q_T) per output position, p the teacher (dense, or top-k + tail bucket), q the student
        at T, over the last dimension. Dense: the same operations as `kd_loss` (methods/kd.py)."""
        if self.topk is not None:
            return topk_kl(student_logits, self.topk, temperature)
        log_p = self.log_probs(temperature).detach()
        log_q = torch.log_softmax(student_logits / temperature, dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(-1)
