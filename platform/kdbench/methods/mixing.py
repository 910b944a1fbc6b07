"""The benchmark's loss mixing for feature methods: r·CE + a·KD + b·method (RepDistiller's -r -a -b).

Every feature-based method's Params extend `MixParams`, so "any method + KD" is a setting, not new
code: e.g. `fitnet: {kd_weight: 0.9}` is FitNet + KD. Defaults: r = 1, a = 0 (the method alone, as
in CRD's Table 1); the method's own weight b is declared by each method with its benchmark value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .base import Batch, MethodParams, TeacherOutput
from .kd import kd_loss


class MixParams(MethodParams):
    ce_weight: float = Field(default=1.0, ge=0.0)  # r
    kd_weight: float = Field(default=0.0, ge=0.0)  # a
    kd_temperature: float = Field(default=4.0, gt=0.0)


def label_and_kd(params: MixParams, batch: Batch, logits: torch.Tensor,
                 teacher: TeacherOutput | None) -> dict[str, torch.Tensor]:
    """{"ce": r·CE} when r > 0 plus {"kd": a·T²·KL} when a > 0 (KL summed over classes, mean over the batch).
    r = 0 reads no label at all (a transfer without labels, e.g. CRD's cross-modal setting)."""
    terms = {"ce": params.ce_weight * F.cross_entropy(logits, batch.y)} if params.ce_weight > 0 else {}
    if params.kd_weight > 0 and teacher is not None:
        target = teacher.log_probs(params.kd_temperature).detach()
        terms["kd"] = params.kd_weight * kd_loss(logits, target, params.kd_temperature)
    return terms
