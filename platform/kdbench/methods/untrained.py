"""`untrained`: the floor of a representation study — the student at its random initialisation.

Its loss is zero and reads neither labels nor a teacher, so the optimiser leaves the weights where the
architecture's initialisation put them (SGD's weight decay only rescales them, which a standardised linear
probe does not see through batch normalisation); batch-norm running statistics still follow the training
data, as any trained model's do. What a linear probe reads from it is what random features of that input
carry: the floor every transfer method must beat (CRD's cross-modal setting, tasks/probe.py).

Params defaults: (none)
"""

from __future__ import annotations

from .base import Method, Needs, register_method


@register_method
class Untrained(Method):
    name = "untrained"
    needs = Needs(teacher=False)
    tasks = ("linear_probe",)  # a floor for representations; a classifier from it would score chance

    def forward(self, batch, student, teacher, state):
        return {"untrained": 0.0 * student.logits.sum()}  # zero, with a graph for backward()
