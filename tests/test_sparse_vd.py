"""Sparse variational dropout layers (kdbench/zoo/models/sparse_vd.py; Molchanov et al. 2017): the KL
approximation against a Monte-Carlo estimate, log α clipping, evaluation-time pruning, the local
reparameterisation's mean and variance, and the sparsity report of the models built from them."""

from __future__ import annotations

import math

import pytest
import torch

from kdbench.zoo.models import create_model
from kdbench.zoo.models.sparse_vd import Conv2dSVDO, LinearSVDO, vd_kl


def mc_kl(log_alpha: float, n: int = 4_000_000) -> float:
    """KL(N(θ, αθ²) ‖ log-uniform) up to the constant that makes it vanish as α → ∞ (Molchanov et al. eq. 13-14):
    KL = −0.5 log α + E log|ε| + C with ε ~ N(1, α), and C = (γ + log 2) / 2 = −E log|z| for z ~ N(0, 1)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, generator=g, dtype=torch.float64)
    alpha = math.exp(log_alpha)
    e_log_eps = torch.log(torch.abs(1.0 + math.sqrt(alpha) * z)).mean().item()
    c = (0.5772156649015329 + math.log(2.0)) / 2
    return -0.5 * log_alpha + e_log_eps + c


@pytest.mark.parametrize("log_alpha", [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
def test_the_kl_approximation_matches_a_monte_carlo_estimate(log_alpha):
    approx = vd_kl(torch.tensor([log_alpha], dtype=torch.float64)).item()
    assert approx == pytest.approx(mc_kl(log_alpha), abs=0.01)


def test_the_kl_approximation_formula_and_its_limit():
    la = torch.tensor([-3.0, 0.5, 5.0], dtype=torch.float64)
    k1, k2, k3 = 0.63576, 1.87320, 1.48695
    expected = sum(-(k1 / (1 + math.exp(-(k2 + k3 * a))) - 0.5 * math.log(1 + math.exp(-a)) - k1) for a in la.tolist())
    assert vd_kl(la).item() == pytest.approx(expected, rel=1e-12)
    assert vd_kl(torch.tensor([30.0], dtype=torch.float64)).item() == pytest.approx(0.0, abs=1e-6)  # α → ∞


def test_log_alpha_is_clipped_to_plus_minus_eight():
    layer = LinearSVDO(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1e-3, 1.0], [2.0, 0.5]]))
        layer.log_sigma2.copy_(torch.tensor([[5.0, -20.0], [math.log(4.0) + 1.0, math.log(0.25) - 2.0]]))
    expected = torch.tensor([[8.0, -8.0], [1.0, -2.0]])  # log σ² − log θ², clipped
    torch.testing.assert_close(layer.log_alpha, expected, atol=1e-5, rtol=0)


def test_evaluation_zeroes_the_weights_with_log_alpha_at_or_above_the_threshold():
    layer = LinearSVDO(3, 2, threshold=3.0)
    w = torch.tensor([[1.0, -2.0, 0.5], [0.3, 1.5, -1.0]])
    log_alpha = torch.tensor([[2.9, 3.0, -5.0], [4.0, 0.0, 8.0]])
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.log_sigma2.copy_(log_alpha + torch.log(w**2))
        layer.bias.copy_(torch.tensor([0.1, -0.2]))
    layer.eval()
    x = torch.tensor([[1.0, 2.0, 3.0]])
    kept = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.5, 0.0]])  # written out: entries with log α ≥ 3 are zero
    torch.testing.assert_close(layer(x), x @ kept.T + torch.tensor([0.1, -0.2]))
    assert layer.deployed() == (8, 5)  # 6 weights + 2 biases; 3 weights and both biases non-zero


def test_local_reparameterisation_has_the_mean_and_variance_of_sampled_weights():
    torch.manual_seed(0)
    layer = LinearSVDO(4, 3)
    with torch.no_grad():
        layer.log_sigma2.copy_(torch.log(torch.tensor([[0.1, 0.2, 0.05, 0.3], [0.4, 0.1, 0.1, 0.1],
                                                       [0.02, 0.5, 0.2, 0.05]])))
    layer.train()
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0]]).expand(200_000, 4)
    with torch.no_grad():
        out = layer(x)
    sigma2 = torch.exp(layer.log_sigma2.detach())  # w ~ N(θ, σ²) independently: the sum's mean and variance
    mean = x[0] @ layer.weight.detach().T + layer.bias.detach()
    var = (x[0] ** 2) @ sigma2.T
    torch.testing.assert_close(out.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(out.var(0), var, rtol=0.03, atol=0)


def test_conv_local_reparameterisation_mean_and_variance():
    torch.manual_seed(0)
    layer = Conv2dSVDO(1, 1, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[[0.5, -1.0], [2.0, 0.1]]]]))
        layer.log_sigma2.copy_(torch.log(torch.tensor([[[[0.1, 0.3], [0.2, 0.05]]]])))
    x = torch.tensor([[[[1.0, 2.0], [-1.0, 0.5]]]]).expand(100_000, 1, 2, 2)
    with torch.no_grad():
        out = layer(x).flatten()
    mean = 0.5 * 1 - 1.0 * 2 + 2.0 * -1 + 0.1 * 0.5 + layer.bias.item()
    var = 0.1 * 1 + 0.3 * 4 + 0.2 * 1 + 0.05 * 0.25
    assert out.mean().item() == pytest.approx(mean, abs=0.01)
    assert out.var().item() == pytest.approx(var, rel=0.03)
    layer.eval()
    assert layer(x[:1]).item() == pytest.approx(mean)  # log α < 3 everywhere: nothing pruned


def test_models_report_their_kl_and_sparsity():
    model = create_model("svd_mlp", {"widths": [5]}, (1, 2, 2), 3)
    layers = model.vd_layers()
    assert len(layers) == 2
    torch.testing.assert_close(model.variational_kl(), vd_kl(layers[0].log_alpha) + vd_kl(layers[1].log_alpha))
    with torch.no_grad():  # prune the first layer's whole weight matrix
        layers[0].log_sigma2.copy_(torch.log(layers[0].weight**2) + 5.0)
    report = model.sparsity_report()
    assert report["deployed_params"] == 4 * 5 + 5 + 5 * 3 + 3  # log σ² is not deployed
    assert report["nonzero_params"] == 5 + 5 * 3 + 3
    assert report["vd_sparsity"] == pytest.approx(20 / 35)
    assert report["sparsity"] == pytest.approx(20 / 43)


def test_svd_vgg_pairs_layer_for_layer_with_the_dense_vgg():
    with torch.device("meta"):
        sparse = create_model("svd_vgg", {"cfg": "vgg8"}, (3, 32, 32), 10)
        dense = create_model("vgg8", {}, (3, 32, 32), 10)
    shapes = [tuple(p.shape) for n, p in sparse.named_parameters() if n.endswith("weight") and p.dim() >= 2]
    assert shapes == [tuple(p.shape) for n, p in dense.named_parameters() if n.endswith("weight") and p.dim() >= 2]
    assert len(sparse.vd_layers()) == 6  # five convolutions and the classifier


def test_svd_vgg_trains_under_vs_against_a_dense_vgg_teacher():
    from kdbench.methods import Batch, MethodContext, TeacherOutput, TrainState, create_method

    torch.set_num_threads(1)
    torch.manual_seed(0)
    student = create_model("svd_vgg", {"cfg": "vgg8"}, (3, 32, 32), 10)
    teacher = create_model("vgg8", {}, (3, 32, 32), 10).eval().requires_grad_(False)
    method = create_method("vs", {"warmup_epochs": 0}, MethodContext(num_classes=10, num_train=1000,
                                                                     student=student, teacher=teacher))
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    terms = method(Batch(x, y, torch.arange(2)), student(x), TeacherOutput(teacher(x).logits[None]),
                   TrainState(0, 1))
    sum(terms.values()).backward()
    assert all(torch.isfinite(v) for v in terms.values()) and terms["bs"] > 0 and terms["vd"] > 0
    assert all(layer.log_sigma2.grad is not None for layer in student.vd_layers())
    student.eval()
    torch.testing.assert_close(student(x).logits, student(x).logits)  # deterministic at evaluation
