"""Tests of the `rkd` method (kdbench/methods/rkd.py): its loss against references written from the paper or
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


def np_huber(a, b):
    d = np.abs(a - b)
    return np.where(d < 1, 0.5 * d**2, d - 0.5).mean()


def test_rkd_weights_huber_losses_of_distances_and_angles():
    s_shapes, t_shapes = {"embedding": (4,)}, {"embedding": (6,)}
    s, t = feats(1, s_shapes), feats(2, t_shapes)

    def dist(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=2)
        return d / d[d > 0].mean()

    def angles(x):  # [j, i, k]: cosine at x_j between x_i and x_k; a zero difference has zero direction
        e = x[None, :, :] - x[:, None, :]
        norm = np.linalg.norm(e, axis=2, keepdims=True)
        u = np.divide(e, norm, out=np.zeros_like(e), where=norm > 0)
        return np.einsum("jid,jkd->jik", u, u)

    xs, xt = n(s["embedding"]), n(t["embedding"])
    expected = 25 * np_huber(dist(xs), dist(xt)) + 50 * np_huber(angles(xs), angles(xt))
    assert val(call(make("rkd", s_shapes, t_shapes), s, t)["rkd"]) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("name", [c for c in CASES_DEFAULTS_ARE_THE if c == "rkd"])
def test_defaults_are_the_benchmark_settings(name):
    check_defaults_are_the_benchmark_settings(name)


@pytest.mark.parametrize("name, params", [c for c in CASES_GRADIENTS_REACH_THE if c[0] == "rkd"])
def test_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params):
    check_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params)


@pytest.mark.parametrize("name", [c for c in CASES_AN_ENSEMBLE_WITHOUT if c == "rkd"])
def test_an_ensemble_without_features_is_refused_up_front(name):
    check_an_ensemble_without_features_is_refused_up_front(name)


@pytest.mark.parametrize("name, overrides", [c for c in CASES_TRAINS_THROUGH_THE if c[0] == "rkd"])
def test_trains_through_the_engine(trained_teacher, name, overrides):
    check_trains_through_the_engine(trained_teacher, name, overrides)
