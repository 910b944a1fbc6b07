"""Tests of the `cc` method (kdbench/methods/cc.py): its loss against references written from the paper or
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
    B,
    call,
    check_an_ensemble_without_features_is_refused_up_front,
    check_defaults_are_the_benchmark_settings,
    check_gradients_reach_the_student_and_the_method_but_not_the_teacher,
    check_trains_through_the_engine,
    feats,
    make,
    n,
    np_unit_rows,
    val,
)


def test_cc_benchmark_multiplies_consecutive_rows_of_the_head_differences():
    s_shapes, t_shapes = {"embedding": (7,)}, {"embedding": (9,)}
    m = make("cc", s_shapes, t_shapes)
    assert m.embed_s.out_features == m.embed_t.out_features == 128
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    e_s = n(s["embedding"]) @ n(m.embed_s.weight).T + n(m.embed_s.bias)
    e_t = n(t["embedding"]) @ n(m.embed_t.weight).T + n(m.embed_t.bias)
    d = np.abs(e_s - e_t)
    expected = np.mean([d[i] @ d[i + 1] for i in range(B - 1)])
    assert val(call(m, s, t)["cc"]) == pytest.approx(0.02 * expected, rel=1e-10)


def test_cc_paper_matches_taylor_expanded_rbf_correlations():
    s_shapes, t_shapes = {"embedding": (7,)}, {"embedding": (9,)}
    m = make("cc", s_shapes, t_shapes, variant="paper")
    assert list(m.parameters()) == []  # no heads: the correlations of the raw embeddings are compared
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    g = 0.4

    def psi(f):
        u = np_unit_rows(f)
        c = u @ u.T
        return np.exp(-2 * g) * (1 + 2 * g * c + (2 * g * c) ** 2 / 2)

    expected = ((psi(n(t["embedding"])) - psi(n(s["embedding"]))) ** 2).sum() / B**2
    assert val(call(m, s, t)["cc"]) == pytest.approx(0.02 * expected, rel=1e-10)


def test_cc_paper_kernel_approaches_the_gaussian_rbf():
    from kdbench.methods.cc import correlation

    x = torch.nn.functional.normalize(torch.randn(4, 3, dtype=torch.float64), dim=1)
    rbf = torch.exp(-0.4 * torch.cdist(x, x) ** 2)
    assert torch.allclose(correlation(x, 0.4, 12), rbf, atol=1e-9)


@pytest.mark.parametrize("name", [c for c in CASES_DEFAULTS_ARE_THE if c == "cc"])
def test_defaults_are_the_benchmark_settings(name):
    check_defaults_are_the_benchmark_settings(name)


@pytest.mark.parametrize("name, params", [c for c in CASES_GRADIENTS_REACH_THE if c[0] == "cc"])
def test_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params):
    check_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params)


@pytest.mark.parametrize("name", [c for c in CASES_AN_ENSEMBLE_WITHOUT if c == "cc"])
def test_an_ensemble_without_features_is_refused_up_front(name):
    check_an_ensemble_without_features_is_refused_up_front(name)


@pytest.mark.parametrize("name, overrides", [c for c in CASES_TRAINS_THROUGH_THE if c[0] == "cc"])
def test_trains_through_the_engine(trained_teacher, name, overrides):
    check_trains_through_the_engine(trained_teacher, name, overrides)
