"""`linear_probe`: how linearly separable a model's representation makes the classes (CRD's cross-modal evaluation).

Targets are class labels, as in classification, and training is classification's (cross-entropy on the logits,
`train_acc` of the model's own head): a teacher or a supervised student trains as usual; a transfer method may
ignore the labels. What is scored is the representation: the model's `embedding` tap (the pooled features its
classifier reads), frozen. A linear probe — multinomial logistic regression — is fitted on the embeddings of the
dataset's labelled probe split (`DataSplits.probe`; the training split when the dataset has none) and its
accuracy on the scored split (val, test) is the primary metric `probe_acc`. The teacher's probe accuracy (on
its own modality) is recorded as `teacher_test_probe_acc`.

The probe is deterministic: features standardised by the fit split's mean and standard deviation, then
scikit-learn's `LogisticRegression` (L-BFGS, L2 penalty C = PROBE_C, at most PROBE_ITERS iterations, float64).
CRD's paper trains its linear classifier with SGD for a fixed schedule; the closed, deterministic solver here
is this benchmark's choice (a probe per job must not add seed noise of its own), not the paper's.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from kdbench.outputs import TeacherOutput

from .base import Metric, _chunks, register_task
from .classification import Classification

PROBE_C = 1.0  # inverse L2 strength of the probe (scikit-learn's default)
PROBE_ITERS = 1000
EMBEDDING = "embedding"


def fit_probe(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy on (test, y_test) of a linear probe fitted on (train, y_train): standardised features, L2 logistic
    regression. A fit split of a single class predicts that class."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    mean, std = train.mean(0), train.std(0)
    std[std < 1e-12] = 1.0  # a constant feature carries nothing: leave it centred at 0
    train, test = (train - mean) / std, (test - mean) / std
    classes = np.unique(y_train)
    if len(classes) == 1:
        return float(np.mean(y_test == classes[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget: the probe is what it reaches
        probe = LogisticRegression(C=PROBE_C, max_iter=PROBE_ITERS).fit(train, y_train)
    return float(np.mean(probe.predict(test) == y_test))


@register_task
class LinearProbe(Classification):
    name = "linear_probe"
    metrics = (Metric("probe_acc", "linear-probe accuracy", True, "%", 100.0, 0.0, 1.0),)
    primary = "probe_acc"
    reads_features = True

    @torch.no_grad()
    def predict(self, model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """(N, D) the model's (or a single teacher's) embeddings over `x`, in eval mode."""
        model.eval()
        return torch.cat([_embedding(model(xb)) for xb in _chunks(x, batch_size)])

    def fit_split(self, data):
        return data.probe if data.probe is not None else data.train

    def score(self, predictions, y, fit=None):
        if fit is None:
            raise ValueError("linear_probe scores a probe fitted on the embeddings of a labelled split: pass `fit`")
        f, f_y = fit
        return {"probe_acc": fit_probe(f.float().cpu().numpy(), f_y.cpu().numpy(),
                                       predictions.float().cpu().numpy(), y.cpu().numpy())}

    def agreement(self, student, teacher):
        return None  # embeddings of two networks have no shared classes to agree on


def _embedding(out) -> torch.Tensor:
    features = out.features
    if EMBEDDING not in features:
        kind = "an ensemble of teachers or a teacher-output cache" if isinstance(out, TeacherOutput) else "a model"
        raise ValueError(f"linear_probe reads the '{EMBEDDING}' feature tap, which {kind} here does not give")
    return features[EMBEDDING].flatten(1).float()
