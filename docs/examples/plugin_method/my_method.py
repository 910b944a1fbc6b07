"""`embedding_hint`: a FitNets-style hint on the pooled embedding — the example method of
docs/adding-a-method.md.

The student's embedding e_s (B, D_s) is mapped to the teacher's width by a learned linear regressor W and
matched to the teacher's embedding e_t (B, D_t) by the mean squared error, added to the benchmark's mix:

    loss = r·CE(s, y) + a·T²·KL(p_T ‖ q_T) + b · mean((W·e_s − e_t)²)

Defaults: b = 1, r = 1, a = 0 (the method alone, plus cross-entropy).

Params defaults: ce_weight=1.0, kd_weight=0.0, kd_temperature=4.0, weight=1.0
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field
from torch import nn

from kdbench.methods import Incompatible, Method, Needs, register_method
from kdbench.methods.mixing import MixParams, label_and_kd
from kdbench.methods.taps import embedding


class EmbeddingHintParams(MixParams):  # r, a and T come from MixParams
    weight: float = Field(default=1.0, ge=0.0)  # b


@register_method
class EmbeddingHint(Method):
    name = "embedding_hint"
    Params = EmbeddingHintParams
    needs = Needs(teacher=True, features=("embedding",))
    fusable = False  # it owns a regressor and reads feature taps

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        s, t = ctx.student_features.get("embedding"), ctx.teacher_features.get("embedding")
        if s is None or t is None or len(s) != 1 or len(t) != 1:
            raise Incompatible(f"embedding_hint needs a (D,) 'embedding' tap on both models, got {s} and {t}")
        self.regressor = nn.Linear(s[0], t[0])

    def forward(self, batch, student, teacher, state):
        p = self.params
        hint = F.mse_loss(self.regressor(embedding(student.features)), embedding(teacher.features).detach())
        return label_and_kd(p, batch, student.logits, teacher) | {"hint": p.weight * hint}
