"""Tests of the `fitnet` method (kdbench/methods/fitnet.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .feature_helpers import (
    CASES_AN_ENSEMBLE_WITHOUT,
    CASES_DEFAULTS_ARE_THE,
    CASES_GRADIENTS_REACH_THE,
    CASES_TRAINS_THROUGH_THE,
    call,
    check_an_ensemble_without_features_is_refused_up_front,
    check_defaults_are_the_benchmark_settings,
    check_gradients_reach_the_student_and_the_method_but_not_the_teacher,
    check_trains_through_the_engine,
    feats,
    make,
    n,
    val,
)


def np_conv(x, w, bias=None):
    """Valid (no padding, stride 1) convolution: x (B, C, H, W), w (O, C, kh, kw) -> (B, O, H-kh+1, W-kw+1)."""
    o, _, kh, kw = w.shape
    hh, ww = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], o, hh, ww))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("bchw,oc->bohw", x[:, :, i:i + hh, j:j + ww], w[:, :, i, j])
    return out if bias is None else out + bias[None, :, None, None]


def np_bn_train(x, gamma, beta, eps=1e-5):
    m, v = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)  # biased variance
    return (x - m) / np.sqrt(v + eps) * gamma[None, :, None, None] + beta[None, :, None, None]


@pytest.mark.parametrize("s_hw, t_hw", [((4, 4), (4, 4)), ((5, 5), (4, 4)), ((5, 4), (3, 3))])
def test_fitnet_is_the_mse_of_the_regressed_hint(s_hw, t_hw):
    s_shapes, t_shapes = {"stage2": (3, *s_hw)}, {"stage2": (2, *t_hw)}
    m = make("fitnet", s_shapes, t_shapes)
    conv, bn = m.regressor[0], m.regressor[1]
    with torch.no_grad():  # a non-trivial BN affine
        bn.weight.copy_(torch.tensor([1.5, 0.7]))
        bn.bias.copy_(torch.tensor([0.2, -0.1]))
    assert conv.kernel_size == (1 + s_hw[0] - t_hw[0], 1 + s_hw[1] - t_hw[1])
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    r = np.maximum(np_bn_train(np_conv(n(s["stage2"]), n(conv.weight), n(conv.bias)), n(bn.weight), n(bn.bias)), 0)
    expected = ((r - n(t["stage2"])) ** 2).mean()
    terms = call(m, s, t)
    assert set(terms) == {"ce", "hint"}
    assert val(terms["hint"]) == pytest.approx(100 * expected, rel=1e-10)


@pytest.mark.parametrize("s_hw, t_hw, kind", [(8, 4, torch.nn.Conv2d), (4, 8, torch.nn.ConvTranspose2d)])
def test_fitnet_regressor_halves_or_doubles_the_map(s_hw, t_hw, kind):
    m = make("fitnet", {"stage2": (3, s_hw, s_hw)}, {"stage2": (5, t_hw, t_hw)})
    assert type(m.regressor[0]) is kind and m.regressor[0].stride == (2, 2)
    out = m.regressor(torch.zeros(2, 3, s_hw, s_hw, dtype=torch.float64))
    assert out.shape == (2, 5, t_hw, t_hw)


def test_fitnet_init_stage_returns_the_unweighted_hint_only():
    shapes = {"stage2": (3, 4, 4)}
    m = make("fitnet", shapes, {"stage2": (2, 4, 4)}, hint_epochs=3)
    assert m.init_epochs == 3 and make("fitnet", shapes, {"stage2": (2, 4, 4)}).init_epochs == 0
    s, t = feats(1, shapes), feats(2, {"stage2": (2, 4, 4)})
    init, main = call(m, s, t, "init"), call(m, s, t, "main")
    assert set(init) == {"hint"} and val(main["hint"]) == pytest.approx(100 * val(init["hint"]))


def test_fitnet_rejects_a_teacher_hint_larger_than_the_students():
    with pytest.raises(ValueError, match="cannot regress"):
        make("fitnet", {"stage2": (3, 3, 3)}, {"stage2": (3, 5, 5)})


@pytest.mark.parametrize("name", [c for c in CASES_DEFAULTS_ARE_THE if c == "fitnet"])
def test_defaults_are_the_benchmark_settings(name):
    check_defaults_are_the_benchmark_settings(name)


@pytest.mark.parametrize("name, params", [c for c in CASES_GRADIENTS_REACH_THE if c[0] == "fitnet"])
def test_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params):
    check_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params)


@pytest.mark.parametrize("name", [c for c in CASES_AN_ENSEMBLE_WITHOUT if c == "fitnet"])
def test_an_ensemble_without_features_is_refused_up_front(name):
    check_an_ensemble_without_features_is_refused_up_front(name)


@pytest.mark.parametrize("name, overrides", [c for c in CASES_TRAINS_THROUGH_THE if c[0] == "fitnet"])
def test_trains_through_the_engine(trained_teacher, name, overrides):
    check_trains_through_the_engine(trained_teacher, name, overrides)
