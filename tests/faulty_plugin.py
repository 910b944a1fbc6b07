"""A plugin for fault tests: methods that fail inside the loss, as a user's buggy method would.

Named in a suite's `plugins:` so the driver and every Ray worker import it.
"""

from __future__ import annotations

import torch

from kdbench.methods import Method, Needs, register_method


@register_method
class RaiseInLoss(Method):
    """Raises from inside the loss at the first step (a bug in a method)."""

    name = "test_raise_in_loss"
    needs = Needs(teacher=True)

    def forward(self, batch, student, teacher, state):
        raise RuntimeError("boom inside the method's loss")


@register_method
class OutOfMemory(Method):
    """Raises the error PyTorch raises when the device runs out of memory."""

    name = "test_out_of_memory"
    needs = Needs(teacher=True)

    def forward(self, batch, student, teacher, state):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


@register_method
class NanAfterTwoEpochs(Method):
    """Cross-entropy for two epochs, then a NaN loss (a diverging method): a deterministic failure."""

    name = "test_nan_after_two_epochs"
    needs = Needs(teacher=True)

    def forward(self, batch, student, teacher, state):
        loss = torch.nn.functional.cross_entropy(student.logits, batch.y)
        return {"ce": loss * float("nan") if state.epoch >= 2 else loss}


@register_method
class FailsOnlyFused(Method):
    """Cross-entropy computed through boolean-mask indexing, which `torch.vmap` refuses: fine alone, a
    RuntimeError when its jobs train fused — a method that wrongly claims `fusable = True`."""

    name = "test_fails_only_fused"
    needs = Needs(teacher=True)

    def forward(self, batch, student, teacher, state):
        keep = batch.y >= 0  # every sample; under vmap a data-dependent shape
        return {"ce": torch.nn.functional.cross_entropy(student.logits[keep], batch.y[keep])}
