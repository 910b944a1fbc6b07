"""Tests of the `kd` method (kdbench/methods/kd.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.methods.kd import kd_loss
from kdbench.outputs import ensemble_log_probs
from kdbench.zoo.models import ModelOutput

S = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])  # student logits (B=2, K=3)
T1 = np.array([[3.0, 1.0, 0.0], [-1.0, 2.0, 0.5]])  # teacher logits
T2 = np.array([[0.0, 2.5, 1.0], [1.0, 1.0, -2.0]])  # a second teacher
Y = np.array([0, 2])


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl_batchmean(p, q):
    return float((p * (np.log(p) - np.log(q))).sum(axis=1).mean())


def ce(z, y):
    return float(-np.log(softmax(z)[np.arange(len(y)), y]).mean())


def t(a):
    return torch.tensor(a, dtype=torch.float64)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 20.0])
def test_kd_term_is_t_squared_batchmean_kl(temperature):
    expected = temperature**2 * kl_batchmean(softmax(T1 / temperature), softmax(S / temperature))
    got = kd_loss(t(S), torch.log_softmax(t(T1) / temperature, 1), temperature)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_kd_method_mixes_label_and_soft_losses_by_alpha():
    temperature, alpha = 4.0, 0.7
    method = create_method("kd", {"temperature": temperature, "alpha": alpha}, MethodContext(3, 10))
    terms = method(Batch(t(S), torch.tensor(Y), torch.arange(2)), ModelOutput(t(S)),
                   TeacherOutput(t(T1)[None]), TrainState(0, 1))
    assert float(terms["ce"]) == pytest.approx((1 - alpha) * ce(S, Y), rel=1e-12)
    kd = alpha * temperature**2 * kl_batchmean(softmax(T1 / temperature), softmax(S / temperature))
    assert float(terms["kd"]) == pytest.approx(kd, rel=1e-12)


def test_defaults_are_the_benchmark_settings():
    p = METHODS.get("kd").Params()
    assert (p.temperature, p.alpha) == (4.0, 0.9)  # RepDistiller/CRD: --kd_T 4, -r 0.1 -a 0.9


def test_arithmetic_ensemble_is_the_mean_of_softened_distributions():
    temperature = 2.0
    expected = (softmax(T1 / temperature) + softmax(T2 / temperature)) / 2
    got = ensemble_log_probs(torch.stack([t(T1), t(T2)]), temperature, "arithmetic").exp()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_geometric_ensemble_is_the_normalised_product():
    temperature = 2.0
    g = np.sqrt(softmax(T1 / temperature) * softmax(T2 / temperature))
    expected = g / g.sum(axis=1, keepdims=True)
    got = ensemble_log_probs(torch.stack([t(T1), t(T2)]), temperature, "geometric").exp()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_kd_from_an_ensemble_uses_the_combined_distribution():
    temperature = 3.0
    method = create_method("kd", {"temperature": temperature, "alpha": 1.0}, MethodContext(3, 10))
    teacher = TeacherOutput(torch.stack([t(T1), t(T2)]), "arithmetic")
    terms = method(Batch(t(S), torch.tensor(Y), torch.arange(2)), ModelOutput(t(S)), teacher, TrainState(0, 1))
    p = (softmax(T1 / temperature) + softmax(T2 / temperature)) / 2
    assert float(terms["kd"]) == pytest.approx(temperature**2 * kl_batchmean(p, softmax(S / temperature)))
    assert float(terms["ce"]) == 0.0


def test_gradients_reach_the_student_only():
    s = t(S).requires_grad_()
    teacher_logits = t(T1).requires_grad_()
    method = create_method("kd", {}, MethodContext(3, 10))
    terms = method(Batch(s, torch.tensor(Y), torch.arange(2)), ModelOutput(s),
                   TeacherOutput(teacher_logits[None]), TrainState(0, 1))
    sum(terms.values()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert teacher_logits.grad is None
