"""Tests of the `pkt` method (kdbench/methods/pkt.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_pkt_is_the_kl_of_cosine_kernel_conditionals():
    s_shapes, t_shapes = {"embedding": (4,)}, {"embedding": (6,)}
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    eps = 1e-7

    def cond(x):
        u = x / (np.sqrt((x**2).sum(1, keepdims=True)) + eps)
        k = (u @ u.T + 1) / 2
        return k / k.sum(1, keepdims=True)

    p, q = cond(n(t["embedding"])), cond(n(s["embedding"]))
    expected = (p * np.log((p + eps) / (q + eps))).mean()
    assert val(call(make("pkt", s_shapes, t_shapes), s, t)["pkt"]) == pytest.approx(30000 * expected, rel=1e-10)


@pytest.mark.parametrize("name", [c for c in CASES_DEFAULTS_ARE_THE if c == "pkt"])
def test_defaults_are_the_benchmark_settings(name):
    check_defaults_are_the_benchmark_settings(name)


@pytest.mark.parametrize("name, params", [c for c in CASES_GRADIENTS_REACH_THE if c[0] == "pkt"])
def test_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params):
    check_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params)


@pytest.mark.parametrize("name", [c for c in CASES_AN_ENSEMBLE_WITHOUT if c == "pkt"])
def test_an_ensemble_without_features_is_refused_up_front(name):
    check_an_ensemble_without_features_is_refused_up_front(name)


@pytest.mark.parametrize("name, overrides", [c for c in CASES_TRAINS_THROUGH_THE if c[0] == "pkt"])
def test_trains_through_the_engine(trained_teacher, name, overrides):
    check_trains_through_the_engine(trained_teacher, name, overrides)
