"""`masked_lm`: predict the original token at masked positions; the model outputs (B, L, V) logits over the
vocabulary and the targets y are (B, L) original ids at the predicted positions, -100 elsewhere (the masking
rule, kdbench/zoo/datasets/masking.py, makes them).

Loss: cross-entropy over the predicted positions, mean over them (BERT's MLM loss). Metrics over the predicted
positions of a split: masked-token accuracy (`mlm_acc`, top-1, a fraction shown in percent) and perplexity
(`ppl`, exp of the mean negative log-likelihood, lower is better). The primary metric is `mlm_acc`: bounded, so
intervals over seeds clip cleanly, and it ranks students the way perplexity does in practice; perplexity is
recorded beside it. A teacher's prediction is its (ensemble-combined) log-probabilities at T = 1. Teacher
agreement is not reported (None): the task's `agreement(student, teacher)` sees no targets, so it cannot tell
predicted positions from padding. Predictions of a split would be (N, L, V) floats (15 GB for 1,000 sequences of
128 tokens over BERT's vocabulary), so the task is `streamed`: a split is scored 16 sequences at a time from
summed `batch_sums`, holding one batch's logits (16 × 128 × 30,522 floats ≈ 250 MB at BERT scale).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdbench.outputs import TeacherOutput

from .base import Metric, Task, register_task

IGNORE = -100


def _nll(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, L) negative log-likelihood of the targets; 0 where y is ignored. vmap-safe (no boolean indexing)."""
    log_p = torch.log_softmax(prediction.float(), dim=-1)
    picked = log_p.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(y != IGNORE, -picked, torch.zeros_like(picked))


@register_task
class MaskedLM(Task):
    name = "masked_lm"
    metrics = (Metric("mlm_acc", "masked-token accuracy", True, "%", 100.0, 0.0, 1.0),
               Metric("ppl", "masked-token perplexity", False, "", 1.0, 1.0, None))
    primary = "mlm_acc"
    loss_term = "mlm"
    streamed = True
    eval_batch = 16

    def prediction(self, out):
        return out.log_probs(1.0) if isinstance(out, TeacherOutput) else out.logits

    def loss(self, prediction, y):
        return F.cross_entropy(prediction.flatten(0, -2), y.flatten(), ignore_index=IGNORE)

    def batch_sums(self, prediction, y):
        target = y != IGNORE
        return {"correct": ((prediction.argmax(-1) == y) & target).sum(), "predicted": target.sum(),
                "nll": _nll(prediction, y).sum()}

    def train_metrics(self, sums, n):
        count = sums["predicted"].clamp(min=1)
        return {"train_mlm_acc": sums["correct"] / count, "train_ppl": (sums["nll"] / count).exp()}

    def score(self, predictions, y):
        return self.score_sums(self.batch_sums(predictions, y))

    def score_sums(self, sums):
        count = max(int(sums["predicted"]), 1)
        return {"mlm_acc": float(sums["correct"]) / count, "ppl": float(torch.exp(sums["nll"] / count))}
