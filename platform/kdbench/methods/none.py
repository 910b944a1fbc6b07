"""`none`: the student trained on labels alone — the baseline every method is compared with.

Loss: cross-entropy, mean over the batch.

Params defaults: (none)
"""

from __future__ import annotations

import torch.nn.functional as F

from .base import Method, Needs, register_method


@register_method
class NoDistillation(Method):
    name = "none"
    needs = Needs(teacher=False)

    def forward(self, batch, student, teacher, state):
        return {"ce": F.cross_entropy(student.logits, batch.y)}
