"""Tests of the `ab` method (kdbench/methods/ab.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdbench.methods import METHODS

from .stage_helpers import (
    CASES_A_JOB_INTERRUPTED,
    CASES_NO_TEACHER_FEATURES,
    CASES_THE_INIT_STAGE,
    CASES_TRAINS_THROUGH_THE,
    INIT,
    MAIN,
    build,
    call,
    check_a_job_interrupted_in_the_init_stage_resumes_exactly,
    check_no_teacher_features_is_a_clear_error,
    check_the_init_stage_trains_no_classifier,
    check_trains_through_the_engine,
    n,
    np_bn_train,
    np_ce,
    np_same_size,
    shapes_of,
    taps,
)


def np_ab(s_list, t_list, margin=1.0):
    total, nst = 0.0, len(s_list)
    for i, (s, t) in enumerate(zip(s_list, t_list, strict=True)):
        on = t > 0
        # the reference's form: (s − μ)² where s ≤ μ and the teacher fires, (s + μ)² where s > −μ and it does not
        per = (s - margin) ** 2 * ((s <= margin) & on) + (s + margin) ** 2 * ((s > -margin) & ~on)
        total += 2.0 ** (i - nst + 1) * per.sum() / s.shape[0] / 1000 * 3
    return total


def np_connector(c, x):
    conv, bn = c[0], c[1]
    y = np.einsum("bchw,oc->bohw", x, n(conv.weight)[:, :, 0, 0])
    return np_bn_train(y, n(bn.weight), n(bn.bias), bn.eps)


@pytest.mark.parametrize("variant, t_stage1", [("benchmark", (3, 4, 4)), ("paper", (3, 2, 2))])
def test_ab_init_loss_matches_numpy(variant, t_stage1):
    s_sh, t_sh = shapes_of((2, 4, 4), [(2, 4, 4), (4, 2, 2)]), shapes_of((2, 4, 4), [t_stage1, (4, 2, 2)])
    method = build("ab", s_sh, t_sh, variant=variant)
    s, t = taps(1, s_sh), taps(2, t_sh)
    terms, _, _ = call(method, s, t, INIT)
    assert set(terms) == {"ab"}  # the init stage: no CE, no KD
    conn = method.connectors
    s_maps = [np_connector(conn[0], n(s["preact1"])), n(s["preact2"])]
    if variant == "paper":  # always a connector, even where the shapes already match
        s_maps[1] = np_connector(conn[1], n(s["preact2"]))
    else:
        assert isinstance(conn[1], torch.nn.Identity)
    pairs = [np_same_size(a, n(b)) for a, b in zip(s_maps, [t["preact1"], t["preact2"]], strict=True)]
    expected = np_ab([a for a, _ in pairs], [b for _, b in pairs])
    assert expected > 0 and terms["ab"].item() == pytest.approx(expected, rel=1e-10)


def test_ab_adds_nothing_of_its_own_in_the_main_stage():
    sh = shapes_of((2, 4, 4), [(2, 4, 4)])
    terms, logits, y = call(build("ab", sh, sh), taps(1, sh), taps(2, sh), MAIN)
    assert set(terms) == {"ce"} and terms["ce"].item() == pytest.approx(np_ce(logits, y), rel=1e-10)


def test_ab_defaults_are_the_benchmarks():
    p = METHODS.get("ab").Params()
    assert (p.weight, p.margin, p.init_epochs, p.variant, p.ce_weight, p.kd_weight) == (1.0, 1.0, 30, "benchmark",
                                                                                          1.0, 0.0)
    sh = shapes_of((2, 4, 4), [(2, 4, 4), (2, 4, 4)])
    assert build("ab", sh, sh).init_epochs == 30
    # the benchmark's connector is the identity only where channels *and* size already match
    conn = build("ab", sh, shapes_of((2, 4, 4), [(2, 4, 4), (2, 2, 2)])).connectors
    assert isinstance(conn[0], torch.nn.Identity) and isinstance(conn[1][0], torch.nn.Conv2d)


def test_ab_gradients_reach_the_student_and_connectors_not_the_teacher():
    s_sh, t_sh = shapes_of((2, 4, 4), [(2, 4, 4), (4, 2, 2)]), shapes_of((2, 4, 4), [(3, 4, 4), (5, 2, 2)])
    method, s, t = build("ab", s_sh, t_sh), taps(1, s_sh, grad=True), taps(2, t_sh, grad=True)
    sum(call(method, s, t, INIT)[0].values()).backward()
    assert all(s[k].grad.abs().sum() > 0 for k in ("preact1", "preact2"))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())
    assert all(v.grad is None for v in t.values())


@pytest.mark.parametrize("name", [c for c in CASES_NO_TEACHER_FEATURES if c == "ab"])
def test_no_teacher_features_is_a_clear_error(name):
    check_no_teacher_features_is_a_clear_error(name)


@pytest.mark.parametrize("name", [c for c in CASES_TRAINS_THROUGH_THE if c == "ab"])
def test_trains_through_the_engine(name, store):
    check_trains_through_the_engine(name, store)


@pytest.mark.parametrize("name", [c for c in CASES_THE_INIT_STAGE if c == "ab"])
def test_the_init_stage_trains_no_classifier(name, store, monkeypatch):
    check_the_init_stage_trains_no_classifier(name, store, monkeypatch)


@pytest.mark.parametrize("name", [c for c in CASES_A_JOB_INTERRUPTED if c == "ab"])
def test_a_job_interrupted_in_the_init_stage_resumes_exactly(name, store):
    check_a_job_interrupted_in_the_init_stage_resumes_exactly(name, store)
