"""Tests of the `nst` method (kdbench/methods/nst.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

import numpy as np
import pytest

from kdbench.methods import METHODS

from .stage_helpers import (
    CASES_NO_TEACHER_FEATURES,
    CASES_TRAINS_THROUGH_THE,
    MAIN,
    build,
    call,
    check_no_teacher_features_is_a_clear_error,
    check_trains_through_the_engine,
    n,
    np_ce,
    np_same_size,
    shapes_of,
    taps,
)


def np_mmd(fs, ft):
    fs, ft = np_same_size(fs, ft)
    s, t = l2_rows_3d(fs), l2_rows_3d(ft)
    k = lambda a, b: np.einsum("bid,bjd->bij", a, b) ** 2  # noqa: E731  polynomial kernel, d = 2, c = 0
    return k(t, t).mean() + k(s, s).mean() - 2 * k(s, t).mean()


def l2_rows_3d(f):
    v = f.reshape(f.shape[0], f.shape[1], -1)  # (B, C, H·W)
    return v / np.linalg.norm(v, axis=2, keepdims=True)


NST_S = shapes_of((2, 4, 4), [(2, 4, 4), (3, 4, 4)])
NST_T = shapes_of((3, 4, 4), [(3, 4, 4), (4, 2, 2)])  # stage 2: the student's map is larger, pooled


def test_nst_loss_matches_numpy_including_the_teacher_term():
    method = build("nst", NST_S, NST_T)
    s, t = taps(1, NST_S), taps(2, NST_T)
    terms, logits, y = call(method, s, t, MAIN)
    expected = 50.0 * sum(np_mmd(n(s[k]), n(t[k])) for k in ("stage1", "stage2"))
    assert set(terms) == {"ce", "nst"} and terms["nst"].item() == pytest.approx(expected, rel=1e-10)
    assert terms["ce"].item() == pytest.approx(np_ce(logits, y), rel=1e-10)
    same, _, _ = call(build("nst", NST_T, NST_T), t, t, MAIN)  # with the teacher term, MMD(t, t) = 0
    assert abs(same["nst"].item()) < 1e-12


def test_nst_defaults_are_the_benchmarks():
    p = METHODS.get("nst").Params()
    assert (p.weight, p.ce_weight, p.kd_weight) == (50.0, 1.0, 0.0)


def test_nst_gradients_reach_the_student_not_the_teacher():
    method = build("nst", NST_S, NST_T)
    s, t = taps(1, NST_S, grad=True), taps(2, NST_T, grad=True)
    call(method, s, t, MAIN)[0]["nst"].backward()
    assert all(s[k].grad.abs().sum() > 0 for k in ("stage1", "stage2"))
    assert all(v.grad is None for v in t.values()) and list(method.parameters()) == []


@pytest.mark.parametrize("name", [c for c in CASES_NO_TEACHER_FEATURES if c == "nst"])
def test_no_teacher_features_is_a_clear_error(name):
    check_no_teacher_features_is_a_clear_error(name)


@pytest.mark.parametrize("name", [c for c in CASES_TRAINS_THROUGH_THE if c == "nst"])
def test_trains_through_the_engine(name, store):
    check_trains_through_the_engine(name, store)
