"""Tests of the `dkd` method (kdbench/methods/dkd.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.methods.kd import kd_loss
from kdbench.zoo.models import ModelOutput

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


def np_dkd(s, teacher_probs, y, temp):
    """TCKD and NCKD written out: binary split, and the non-target classes renormalised (columns removed)."""
    ps, pt = softmax(s / temp), teacher_probs
    rows = np.arange(len(y))
    bs = np.stack([ps[rows, y], 1 - ps[rows, y]], 1)
    bt = np.stack([pt[rows, y], 1 - pt[rows, y]], 1)
    tckd = (bt * np.log(bt / bs)).sum(1).mean() * temp**2
    keep = np.ones_like(ps, dtype=bool)
    keep[rows, y] = False
    qs = ps[keep].reshape(len(y), -1)
    qt = pt[keep].reshape(len(y), -1)
    qs, qt = qs / qs.sum(1, keepdims=True), qt / qt.sum(1, keepdims=True)
    nckd = (qt * np.log(qt / qs)).sum(1).mean() * temp**2
    return tckd, nckd


def test_dkd_terms_match_the_decoupled_kl_written_out():
    terms = logit_terms("dkd", {}, epoch=19)  # epoch 20 of mdistiller's 1-based count: warm-up done
    tckd, nckd = np_dkd(S, softmax(T1 / 4), Y, 4.0)
    assert float(terms["tckd"]) == pytest.approx(1.0 * tckd, rel=1e-10)
    assert float(terms["nckd"]) == pytest.approx(8.0 * nckd, rel=1e-10)
    assert float(terms["ce"]) == pytest.approx(ce(S, Y), rel=1e-12)


def test_dkd_nckd_equals_mdistillers_minus_1000_mask():
    gt = np.eye(5)[Y]
    ps = softmax(S / 4 - 1000 * gt)
    pt = softmax(T1 / 4 - 1000 * gt)
    mask = pt > 0  # mdistiller's kl_div treats 0·log 0 as 0
    nckd = (pt[mask] * (np.log(pt[mask]) - np.log(ps[mask]))).sum() / len(Y) * 16
    terms = logit_terms("dkd", {"beta": 1.0}, epoch=19)
    assert float(terms["nckd"]) == pytest.approx(nckd, rel=1e-10)


@pytest.mark.parametrize(("epoch", "factor"), [(0, 1 / 20), (9, 0.5), (19, 1.0), (150, 1.0)])
def test_dkd_warmup_is_min_epoch_over_20_with_1_based_epochs(epoch, factor):
    full = logit_terms("dkd", {}, epoch=19)
    terms = logit_terms("dkd", {}, epoch=epoch)
    assert float(terms["tckd"]) == pytest.approx(factor * float(full["tckd"]), rel=1e-12)
    assert float(terms["nckd"]) == pytest.approx(factor * float(full["nckd"]), rel=1e-12)
    assert float(terms["ce"]) == float(full["ce"])  # the label term is never warmed up


@pytest.mark.parametrize("combine", ["arithmetic", "geometric"])
def test_dkd_recomposes_kd_also_for_ensembles(combine):
    """KD = TCKD + (1 − p^T_t)·NCKD per sample (the paper's reformulation), with the same target as kd."""
    teacher = TeacherOutput(torch.stack([t(T1[:1]), t(T2[:1])]), combine)
    method = create_method("dkd", {"alpha": 1.0, "beta": 1.0, "warmup": 0}, MethodContext(5, 10))
    terms = method(Batch(t(S[:1]), torch.tensor(Y[:1]), torch.arange(1)), ModelOutput(t(S[:1])), teacher,
                   TrainState(0, 1))
    target = teacher.log_probs(4.0)
    p_t = float(target[0, Y[0]].exp())
    kd = float(kd_loss(t(S[:1]), target, 4.0))
    assert float(terms["tckd"]) + (1 - p_t) * float(terms["nckd"]) == pytest.approx(kd, rel=1e-10)
    tckd, nckd = np_dkd(S[:1], target.exp().numpy(), Y[:1], 4.0)
    assert (float(terms["tckd"]), float(terms["nckd"])) == pytest.approx((tckd, nckd), rel=1e-10)


def test_dkd_defaults_are_mdistillers():
    p = METHODS.get("dkd").Params()
    assert (p.ce_weight, p.alpha, p.beta, p.temperature, p.warmup) == (1.0, 1.0, 8.0, 4.0, 20)  # CFG.DKD
    assert METHODS.get("dkd").needs.features == ()


@pytest.mark.parametrize("name", [c for c in CASES_LOGIT_METHODS_SEND if c == "dkd"])
def test_logit_methods_send_gradients_to_the_student_only(name):
    check_logit_methods_send_gradients_to_the_student_only(name)


@pytest.mark.parametrize("name, overrides", [c for c in CASES_METHOD_TRAINS_THROUGH if c[0] == "dkd"])
def test_method_trains_through_the_engine(name, overrides, trained_teacher):
    check_method_trains_through_the_engine(name, overrides, trained_teacher)


def test_a_warm_up_as_long_as_the_training_is_warned_about_with_its_line(tmp_path):
    from typer.testing import CliRunner

    from kdbench.cli import app
    from kdbench.suite import load_suite

    from ..conftest import TINY_SUITE, write_suite

    path = write_suite(tmp_path, TINY_SUITE.replace("methods: [none, kd]", "methods: [none, kd, dkd]"))
    (warning,) = load_suite(str(path)).warnings  # the recipe has 3 epochs; DKD's paper warm-up is 20
    assert warning.startswith(f"{path}:12: methods[2].dkd: warm-up of 20 epochs is not shorter than the recipe's 3")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "warning:" in result.output and "warm-up of 20 epochs" in result.output
    fits = TINY_SUITE.replace("methods: [none, kd]", "methods: [none, kd, {dkd: {warmup: 2}}]")
    assert load_suite(str(write_suite(tmp_path, fits, "fits.yaml"))).warnings == ()
