"""What a teacher hands its student: `TeacherOutput`, and how an ensemble's members are combined.

Combining an ensemble's predictive distributions (Hinton et al. 2015, §2 and §4).

For member logits z_m (m = 1..M) at temperature T, with q_m = softmax(z_m / T):

- arithmetic mean:  p = (1/M) Σ_m q_m
- geometric mean:   p ∝ Π_m q_m^(1/M), renormalised over classes

Both are returned as log-probabilities, computed in log space for stability.
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
    if combine == "arithmetic":
        return torch.logsumexp(log_q, dim=0) - math.log(member_logits.shape[0])
    if combine == "geometric":
        return torch.log_softmax(log_q.mean(dim=0), dim=-1)
    raise ValueError(f"unknown ensemble combine '{combine}' (arithmetic or geometric)")


@dataclass(frozen=True)
class TeacherOutput:
    """A single teacher (M = 1) or an ensemble's members, with how to combine them."""

    member_logits: torch.Tensor  # (M, B, K)
    combine: Combine = "arithmetic"
    features: dict[str, torch.Tensor] = field(default_factory=dict)  # single teachers only

    def log_probs(self, temperature: float = 1.0) -> torch.Tensor:
        """(B, K) log-probabilities of the (combined) teacher at `temperature`."""
        return ensemble_log_probs(self.member_logits, temperature, self.combine)
