"""Tests of the `vid` method (kdbench/methods/vid.py): its loss against references written from the paper or
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
    check_pairs_stages_one_to_one,
    check_trains_through_the_engine,
    feats,
    make,
    n,
    np_pool_to,
    val,
)


def test_vid_pairs_stages_one_to_one():
    check_pairs_stages_one_to_one("vid")


def test_vid_is_the_gaussian_nll_with_per_channel_learned_variance():
    s_shapes = {"stage1": (3, 4, 4), "stage2": (4, 2, 2)}
    t_shapes = {"stage1": (2, 4, 4), "stage2": (5, 4, 4)}  # stage2: the teacher is pooled to 2×2
    m = make("vid", s_shapes, t_shapes)
    with torch.no_grad():
        m.log_scales[1].copy_(torch.linspace(-1.0, 2.0, 5))
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    expected = 0.0
    for i, (f_s, f_t) in enumerate([(n(s["stage1"]), n(t["stage1"])),
                                    (n(s["stage2"]), np_pool_to(n(t["stage2"]), 2, 2))]):
        w = [n(m.regressors[i][j].weight)[:, :, 0, 0] for j in (0, 2, 4)]
        h = np.maximum(np.einsum("bchw,oc->bohw", f_s, w[0]), 0)
        h = np.maximum(np.einsum("bchw,oc->bohw", h, w[1]), 0)
        mu = np.einsum("bchw,oc->bohw", h, w[2])
        var = (np.log1p(np.exp(n(m.log_scales[i]))) + 1e-5)[None, :, None, None]
        expected += (0.5 * ((mu - f_t) ** 2 / var + np.log(var))).mean()
    assert val(call(m, s, t)["vid"]) == pytest.approx(expected, rel=1e-10)


def test_vid_starts_with_variance_five():
    m = make("vid", {"stage1": (3, 4, 4)}, {"stage1": (2, 4, 4)})
    var = np.log1p(np.exp(n(m.log_scales[0]))) + 1e-5
    np.testing.assert_allclose(var, 5.0, rtol=1e-6)  # α is stored in float32
    assert m.regressors[0][0].out_channels == 2 and m.regressors[0][0].bias is None


@pytest.mark.parametrize("name", [c for c in CASES_DEFAULTS_ARE_THE if c == "vid"])
def test_defaults_are_the_benchmark_settings(name):
    check_defaults_are_the_benchmark_settings(name)


@pytest.mark.parametrize("name, params", [c for c in CASES_GRADIENTS_REACH_THE if c[0] == "vid"])
def test_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params):
    check_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params)


@pytest.mark.parametrize("name", [c for c in CASES_AN_ENSEMBLE_WITHOUT if c == "vid"])
def test_an_ensemble_without_features_is_refused_up_front(name):
    check_an_ensemble_without_features_is_refused_up_front(name)


@pytest.mark.parametrize("name, overrides", [c for c in CASES_TRAINS_THROUGH_THE if c[0] == "vid"])
def test_trains_through_the_engine(trained_teacher, name, overrides):
    check_trains_through_the_engine(trained_teacher, name, overrides)
