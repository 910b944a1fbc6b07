"""Tests of the `sp` method (kdbench/methods/sp.py): its loss against references written from the paper or
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
    B,
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


def test_sp_compares_row_normalised_batch_similarities_of_the_last_stage():
    s_shapes = {"stage1": (2, 4, 4), "stage2": (3, 2, 2)}
    t_shapes = {"stage1": (2, 4, 4), "stage2": (5, 4, 4)}
    s, t = feats(1, s_shapes), feats(2, t_shapes)

    def gram(f):
        q = f.reshape(B, -1)
        g = q @ q.T
        return g / np.sqrt((g**2).sum(1, keepdims=True))

    expected = ((gram(n(t["stage2"])) - gram(n(s["stage2"]))) ** 2).sum() / B**2
    terms = call(make("sp", s_shapes, t_shapes), s, t)
    assert terms["sp"].shape == () and val(terms["sp"]) == pytest.approx(3000 * expected, rel=1e-10)


@pytest.mark.parametrize("name", [c for c in CASES_DEFAULTS_ARE_THE if c == "sp"])
def test_defaults_are_the_benchmark_settings(name):
    check_defaults_are_the_benchmark_settings(name)


@pytest.mark.parametrize("name, params", [c for c in CASES_GRADIENTS_REACH_THE if c[0] == "sp"])
def test_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params):
    check_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params)


@pytest.mark.parametrize("name", [c for c in CASES_AN_ENSEMBLE_WITHOUT if c == "sp"])
def test_an_ensemble_without_features_is_refused_up_front(name):
    check_an_ensemble_without_features_is_refused_up_front(name)


@pytest.mark.parametrize("name, overrides", [c for c in CASES_TRAINS_THROUGH_THE if c[0] == "sp"])
def test_trains_through_the_engine(trained_teacher, name, overrides):
    check_trains_through_the_engine(trained_teacher, name, overrides)
