"""Tests of the `dist` method (kdbench/methods/dist.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdbench.methods import METHODS, TeacherOutput

from .logit_helpers import (
    CASES_LOGIT_METHODS_SEND,
    CASES_METHOD_TRAINS_THROUGH,
    T1,
    T2,
    S,
    Y,
    ce,
    check_logit_methods_send_gradients_to_the_student_only,
    check_method_trains_through_the_engine,
    logit_terms,
    softmax,
    t,
)


def np_pearson_distance(a, b):
    return float(np.mean([1 - np.corrcoef(u, v)[0, 1] for u, v in zip(a, b, strict=True)]))


def test_dist_terms_match_pearson_relations_written_out():
    tau = 4.0
    ys, yt = softmax(S / tau), softmax(T1 / tau)
    terms = logit_terms("dist", {})
    assert float(terms["inter"]) == pytest.approx(2.0 * tau**2 * np_pearson_distance(ys, yt), rel=1e-6)
    assert float(terms["intra"]) == pytest.approx(2.0 * tau**2 * np_pearson_distance(ys.T, yt.T), rel=1e-6)
    assert float(terms["ce"]) == pytest.approx(ce(S, Y), rel=1e-12)


def test_dist_at_tau_1_is_the_papers_formula_and_vanishes_for_a_copy():
    terms = logit_terms("dist", {"beta": 1.0, "gamma": 1.0, "temperature": 1.0})
    ys, yt = softmax(S), softmax(T1)
    expected = np_pearson_distance(ys, yt) + np_pearson_distance(ys.T, yt.T)
    assert float(terms["inter"] + terms["intra"]) == pytest.approx(expected, rel=1e-6)
    same = logit_terms("dist", {}, s=T1)  # only the official ε = 1e-8 in ρ's denominator keeps it off 0
    assert abs(float(same["inter"])) < 1e-4 and abs(float(same["intra"])) < 1e-4


def test_dist_uses_the_ensembles_combined_distribution():
    teacher = TeacherOutput(torch.stack([t(T1), t(T2)]), "arithmetic")
    terms = logit_terms("dist", {}, teacher=teacher)
    yt = (softmax(T1 / 4) + softmax(T2 / 4)) / 2
    assert float(terms["inter"]) == pytest.approx(32.0 * np_pearson_distance(softmax(S / 4), yt), rel=1e-6)


def test_dist_defaults_are_the_cifar_setting():
    p = METHODS.get("dist").Params()
    assert (p.ce_weight, p.beta, p.gamma, p.temperature) == (1.0, 2.0, 2.0, 4.0)


@pytest.mark.parametrize("name", [c for c in CASES_LOGIT_METHODS_SEND if c == "dist"])
def test_logit_methods_send_gradients_to_the_student_only(name):
    check_logit_methods_send_gradients_to_the_student_only(name)


@pytest.mark.parametrize("name, overrides", [c for c in CASES_METHOD_TRAINS_THROUGH if c[0] == "dist"])
def test_method_trains_through_the_engine(name, overrides, trained_teacher):
    check_method_trains_through_the_engine(name, overrides, trained_teacher)
