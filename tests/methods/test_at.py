"""Tests of the `at` method (kdbench/methods/at.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

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
    check_pairs_stages_one_to_one,
    check_trains_through_the_engine,
    feats,
    make,
    n,
    np_pool_to,
    np_unit_rows,
    val,
)


def np_at(f):
    return np_unit_rows((f**2).mean(1).reshape(len(f), -1))


def test_at_sums_the_mean_squared_attention_differences_over_stages():
    s_shapes = {"stage1": (3, 4, 4), "stage2": (4, 2, 2), "stage3": (2, 4, 4)}
    t_shapes = {"stage1": (5, 4, 4), "stage2": (6, 4, 4), "stage3": (3, 2, 2)}  # stage2/3: pooled to 2×2
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    pairs = [(n(s["stage1"]), n(t["stage1"])), (n(s["stage2"]), np_pool_to(n(t["stage2"]), 2, 2)),
             (np_pool_to(n(s["stage3"]), 2, 2), n(t["stage3"]))]
    expected = sum(((np_at(a) - np_at(b)) ** 2).mean() for a, b in pairs)
    terms = call(make("at", s_shapes, t_shapes), s, t)
    assert val(terms["at"]) == pytest.approx(1000 * expected, rel=1e-10)


def test_at_pairs_stages_one_to_one():
    check_pairs_stages_one_to_one("at")


@pytest.mark.parametrize("name", [c for c in CASES_DEFAULTS_ARE_THE if c == "at"])
def test_defaults_are_the_benchmark_settings(name):
    check_defaults_are_the_benchmark_settings(name)


@pytest.mark.parametrize("name, params", [c for c in CASES_GRADIENTS_REACH_THE if c[0] == "at"])
def test_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params):
    check_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params)


@pytest.mark.parametrize("name", [c for c in CASES_AN_ENSEMBLE_WITHOUT if c == "at"])
def test_an_ensemble_without_features_is_refused_up_front(name):
    check_an_ensemble_without_features_is_refused_up_front(name)


@pytest.mark.parametrize("name, overrides", [c for c in CASES_TRAINS_THROUGH_THE if c[0] == "at"])
def test_trains_through_the_engine(trained_teacher, name, overrides):
    check_trains_through_the_engine(trained_teacher, name, overrides)
