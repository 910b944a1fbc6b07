"""Tests of the `ft` method (kdbench/methods/ft.py): its loss against references written from the paper or
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


def np_conv3(x, w, b):
    """3×3 convolution, stride 1, zero padding 1; w (O, C, 3, 3)."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, wd = x.shape[2:]
    out = sum(np.einsum("bchw,oc->bohw", xp[:, :, dy:dy + h, dx:dx + wd], w[:, :, dy, dx])
              for dy in range(3) for dx in range(3))
    return out + b[None, :, None, None]


def np_deconv3(x, w, b):
    """3×3 transposed convolution, stride 1, padding 1; w (C_in, C_out, 3, 3): a convolution with the kernel
    flipped and its channel axes swapped."""
    return np_conv3(x, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), b)


def leaky(x):
    return np.where(x > 0, x, 0.1 * x)


def l2_rows(v):
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def np_translator(seq, x):
    for conv, bn in ((seq[0], seq[1]), (seq[3], seq[4]), (seq[6], seq[7])):
        x = leaky(np_bn_train(np_conv3(x, n(conv.weight), n(conv.bias)), n(bn.weight), n(bn.bias), bn.eps))
    return x


def np_encode(par, x):
    for conv in (par.encoder[0], par.encoder[2], par.encoder[4]):
        x = leaky(np_conv3(x, n(conv.weight), n(conv.bias)))
    return x


def np_decode(par, x):
    for conv in (par.decoder[0], par.decoder[2], par.decoder[4]):
        x = leaky(np_deconv3(x, n(conv.weight), n(conv.bias)))
    return x


def np_factor_loss(fs, ft, variant):
    fs, ft = np_same_size(fs, ft)
    if variant == "benchmark":  # attention-style map of the factor: channel mean of squares, L2-normalised
        phi = lambda f: l2_rows((f ** 2).mean(axis=1).reshape(f.shape[0], -1))  # noqa: E731
    else:  # the paper: the whole factor, flattened and L2-normalised
        phi = lambda f: l2_rows(f.reshape(f.shape[0], -1))  # noqa: E731
    return float(np.abs(phi(fs) - phi(ft)).mean())


FT_S = shapes_of((2, 4, 4), [(2, 4, 4), (3, 4, 4)])
FT_T = shapes_of((4, 4, 4), [(4, 4, 4), (4, 2, 2)])  # the teacher's last map is smaller: pooled


def test_ft_init_stage_is_the_paraphrasers_reconstruction_mse():
    method = build("ft", FT_S, FT_T)
    s, t = taps(1, FT_S), taps(2, FT_T)
    terms, _, _ = call(method, s, t, INIT)
    x = n(t["stage2"])
    expected = float(((np_decode(method.paraphraser, np_encode(method.paraphraser, x)) - x) ** 2).mean())
    assert set(terms) == {"rec"} and terms["rec"].item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("variant", ["benchmark", "paper"])
def test_ft_main_stage_factor_loss_matches_numpy(variant):
    method = build("ft", FT_S, FT_T, variant=variant, kd_weight=0.5)
    s, t = taps(1, FT_S), taps(2, FT_T)
    terms, logits, y = call(method, s, t, MAIN)
    assert set(terms) == {"ce", "kd", "ft"} and terms["ce"].item() == pytest.approx(np_ce(logits, y), rel=1e-10)
    factor_s = np_translator(method.translator, n(s["stage2"]))  # (B, 2, 4, 4)
    factor_t = np_encode(method.paraphraser, n(t["stage2"]))  # (B, 2, 2, 2)
    assert factor_s.shape[1] == factor_t.shape[1] == 2  # int(0.5 · 4) factor channels
    expected = 200.0 * np_factor_loss(factor_s, factor_t, variant)
    assert expected > 0 and terms["ft"].item() == pytest.approx(expected, rel=1e-10)


def test_ft_defaults_are_the_benchmarks():
    p = METHODS.get("ft").Params()
    assert (p.weight, p.rate, p.init_epochs, p.variant, p.ce_weight, p.kd_weight) == (200.0, 0.5, 30, "benchmark",
                                                                                       1.0, 0.0)
    assert build("ft", FT_S, FT_T).init_epochs == 30


def test_ft_gradients_per_stage():
    method = build("ft", FT_S, FT_T)
    s, t = taps(1, FT_S, grad=True), taps(2, FT_T, grad=True)
    call(method, s, t, INIT)[0]["rec"].backward()  # init: the paraphraser alone learns
    assert all(p.grad is not None for p in method.paraphraser.parameters())
    assert all(p.grad is None for p in method.translator.parameters()) and s["stage2"].grad is None
    method.zero_grad(set_to_none=True)
    sum(call(method, s, t, MAIN)[0].values()).backward()  # main: student + translator, the paraphraser frozen
    assert s["stage2"].grad.abs().sum() > 0
    assert all(p.grad is not None for p in method.translator.parameters())
    # (a conv bias just before BN gets a zero gradient in exact arithmetic: check the kernels and BN affines)
    assert all(p.grad.abs().sum() > 0 for name, p in method.translator.named_parameters() if "bias" not in name
               or isinstance(method.translator[int(name.split(".")[0])], torch.nn.BatchNorm2d))
    assert all(p.grad is None for p in method.paraphraser.parameters())
    assert all(v.grad is None for v in t.values())


@pytest.mark.parametrize("name", [c for c in CASES_NO_TEACHER_FEATURES if c == "ft"])
def test_no_teacher_features_is_a_clear_error(name):
    check_no_teacher_features_is_a_clear_error(name)


@pytest.mark.parametrize("name", [c for c in CASES_TRAINS_THROUGH_THE if c == "ft"])
def test_trains_through_the_engine(name, store):
    check_trains_through_the_engine(name, store)


@pytest.mark.parametrize("name", [c for c in CASES_THE_INIT_STAGE if c == "ft"])
def test_the_init_stage_trains_no_classifier(name, store, monkeypatch):
    check_the_init_stage_trains_no_classifier(name, store, monkeypatch)


@pytest.mark.parametrize("name", [c for c in CASES_A_JOB_INTERRUPTED if c == "ft"])
def test_a_job_interrupted_in_the_init_stage_resumes_exactly(name, store):
    check_a_job_interrupted_in_the_init_stage_resumes_exactly(name, store)
