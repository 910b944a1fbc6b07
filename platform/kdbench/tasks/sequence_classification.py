"""`sequence_classification`: one label per text (or text pair); the model outputs (B, K) logits.

As `classification` (cross-entropy, top-1 accuracy `acc` primary, agreement by top-1 class), plus the metrics
GLUE reports beside accuracy, recorded for every dataset: `f1` (F1 of class 1 for two classes, as GLUE's MRPC
and QQP; macro-F1 over classes otherwise) and `mcc` (Matthews correlation, CoLA's metric; range [-1, 1]).
"""

from __future__ import annotations

from .base import Metric, register_task
from .classification import Classification


@register_task
class SequenceClassification(Classification):
    name = "sequence_classification"
    metrics = (Metric("acc", "accuracy", True, "%", 100.0, 0.0, 1.0),
               Metric("f1", "F1 (class 1 of two; macro otherwise)", True, "%", 100.0, 0.0, 1.0),
               Metric("mcc", "Matthews correlation", True, "", 1.0, -1.0, 1.0))

    def score(self, predictions, y):
        from sklearn.metrics import f1_score, matthews_corrcoef  # lazily: it loads SciPy (~1 s per trial worker)

        pred, true = predictions.argmax(-1).cpu().numpy(), y.cpu().numpy()
        binary = predictions.shape[-1] == 2
        f1 = f1_score(true, pred, average="binary" if binary else "macro", zero_division=0.0)
        return {"acc": float((pred == true).mean()), "f1": float(f1), "mcc": float(matthews_corrcoef(true, pred))}
