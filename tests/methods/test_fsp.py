"""Tests of the `fsp` method (kdbench/methods/fsp.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

import numpy as np
import pytest

from kdbench.methods import METHODS

from .stage_helpers import (
    CASES_A_JOB_INTERRUPTED,
    CASES_NO_TEACHER_FEATURES,
    CASES_THE_INIT_STAGE,
    CASES_TRAINS_THROUGH_THE,
    FSP_S,
    INIT,
    MAIN,
    build,
    call,
    check_a_job_interrupted_in_the_init_stage_resumes_exactly,
    check_no_teacher_features_is_a_clear_error,
    check_the_init_stage_trains_no_classifier,
    check_trains_through_the_engine,
    n,
    np_ce,
    np_pool,
    shapes_of,
    taps,
)


def np_fsp(a, b):
    size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
    a, b = np_pool(a, size), np_pool(b, size)
    return np.einsum("bihw,bjhw->bij", a, b) / (size[0] * size[1])


FSP_T = shapes_of((2, 8, 8), [(2, 8, 8), (3, 4, 4)])  # same channels, other spatial sizes


def test_fsp_init_loss_matches_numpy():
    method = build("fsp", FSP_S, FSP_T)
    s, t = taps(1, FSP_S), taps(2, FSP_T)
    terms, _, _ = call(method, s, t, INIT)
    order = ["stem", "stage1", "stage2"]
    expected = sum(((np_fsp(n(s[a]), n(s[b])) - np_fsp(n(t[a]), n(t[b]))) ** 2).mean()
                   for a, b in zip(order, order[1:], strict=False))
    assert set(terms) == {"fsp"} and terms["fsp"].item() == pytest.approx(expected, rel=1e-10)
    main, logits, y = call(method, s, t, MAIN)
    assert set(main) == {"ce"} and main["ce"].item() == pytest.approx(np_ce(logits, y), rel=1e-10)


def test_fsp_defaults_and_channel_check():
    p = METHODS.get("fsp").Params()
    assert (p.weight, p.init_epochs, p.ce_weight, p.kd_weight) == (1.0, 30, 1.0, 0.0)
    with pytest.raises(ValueError, match="equal channels"):
        build("fsp", FSP_S, shapes_of((2, 4, 4), [(4, 4, 4), (3, 2, 2)]))


def test_fsp_gradients_reach_the_student_not_the_teacher():
    method = build("fsp", FSP_S, FSP_T)
    s, t = taps(1, FSP_S, grad=True), taps(2, FSP_T, grad=True)
    call(method, s, t, INIT)[0]["fsp"].backward()
    assert all(s[k].grad.abs().sum() > 0 for k in ("stem", "stage1", "stage2"))
    assert all(v.grad is None for v in t.values()) and list(method.parameters()) == []


@pytest.mark.parametrize("name", [c for c in CASES_NO_TEACHER_FEATURES if c == "fsp"])
def test_no_teacher_features_is_a_clear_error(name):
    check_no_teacher_features_is_a_clear_error(name)


@pytest.mark.parametrize("name", [c for c in CASES_TRAINS_THROUGH_THE if c == "fsp"])
def test_trains_through_the_engine(name, store):
    check_trains_through_the_engine(name, store)


@pytest.mark.parametrize("name", [c for c in CASES_THE_INIT_STAGE if c == "fsp"])
def test_the_init_stage_trains_no_classifier(name, store, monkeypatch):
    check_the_init_stage_trains_no_classifier(name, store, monkeypatch)


@pytest.mark.parametrize("name", [c for c in CASES_A_JOB_INTERRUPTED if c == "fsp"])
def test_a_job_interrupted_in_the_init_stage_resumes_exactly(name, store):
    check_a_job_interrupted_in_the_init_stage_resumes_exactly(name, store)
