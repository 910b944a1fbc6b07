"""The KL over a teacher's cached top-k logits plus one lumped tail bucket (kdbench/outputs.py `topk_kl`):
exact when the tail is empty or one class, below the full KL by exactly P_tail · KL(tails) otherwise, and,
on a Zipf-like vocabulary distribution, far closer to the truth than the uniform tail of `topk` caches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdbench.methods.kd import kd_loss, kd_term
from kdbench.outputs import TeacherOutput, TopK, ensemble_log_probs, topk_kl
from kdbench.teachers.cache import topk_logits


def _full_kl(t: torch.Tensor, s: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(t/T) ‖ softmax(s/T)) per row, by torch's own kl_div (not the code under test)."""
    return F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1), reduction="none",
                    log_target=True).sum(-1)


def _logits(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(*shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("shape", [(6, 12), (3, 5, 12)])  # (B, V) and (B, L, V)
@pytest.mark.parametrize("k", [12, 11])  # tail empty, or one class (the bucket is that class)
def test_the_lumped_kl_is_exact_when_the_tail_is_empty_or_one_class(shape, k):
    t, s = _logits(*shape), _logits(*shape, seed=1)
    got = topk_kl(s, TopK.of(t, k, 2.0), 2.0)
    assert got.shape == shape[:-1]
    torch.testing.assert_close(got, _full_kl(t.float(), s, 2.0).to(got.dtype), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_below_the_tail_the_lumped_kl_misses_exactly_p_tail_times_the_kl_of_the_tails(k):
    """KL(p‖q) − KL_lumped = P_tail · KL(p_tail/P_tail ‖ q_tail/Q_tail) ≥ 0 (log-sum inequality)."""
    T = 3.0
    t, s = _logits(8, 12, seed=2), _logits(8, 12, seed=3)
    got = topk_kl(s, TopK.of(t, k, T), T)
    p, q = F.softmax(t / T, -1), F.softmax(s / T, -1)
    top = p.topk(k, -1).indices
    in_tail = torch.ones_like(p, dtype=torch.bool).scatter(-1, top, False)
    p_tail, q_tail = (p * in_tail).sum(-1), (q * in_tail).sum(-1)
    pc, qc = p / p_tail[:, None], q / q_tail[:, None]
    tails_kl = torch.where(in_tail, pc * (pc.log() - qc.log()), 0.0).sum(-1)
    full = _full_kl(t, s, T)
    torch.testing.assert_close(full - got.double(), p_tail * tails_kl, rtol=1e-4, atol=1e-6)
    assert (got <= full + 1e-6).all() and (got >= -1e-7).all()


def test_its_gradient_is_finite_with_and_without_a_tail():
    for k in (12, 11, 4):
        s = _logits(4, 12, seed=4).float().requires_grad_()
        topk_kl(s, TopK.of(_logits(4, 12).float(), k, 2.0), 2.0).sum().backward()
        assert torch.isfinite(s.grad).all()


def test_kd_reads_a_top_k_teacher_through_the_same_term_and_refuses_a_mismatched_temperature():
    t, s = _logits(5, 12).float(), _logits(5, 12, seed=5).float()
    dense = TeacherOutput(t[None])
    top = TeacherOutput(t.new_empty(1, 5, 0), topk=TopK.of(t, 12, 4.0))
    assert torch.equal(kd_term(s, dense, 4.0), kd_loss(s, dense.log_probs(4.0), 4.0))  # dense: unchanged
    torch.testing.assert_close(kd_term(s, top, 4.0), kd_term(s, dense, 4.0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(kd_term(s, top, 4.0), 16 * _full_kl(t, s, 4.0).mean(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="cached at temperature 4.0"):
        kd_term(s, top, 2.0)
    with pytest.raises(ValueError, match="lumped top-k cache"):
        top.log_probs(4.0)


def test_a_single_teachers_log_probs_are_bit_identical_to_the_general_arithmetic_mean():
    """The one-teacher shortcut of `ensemble_log_probs` changes no number (cached and live students stay equal)."""
    x = _logits(1, 64, 100).float()
    x[0, 0, 0] = float("-inf")
    log_q = F.log_softmax(x / 4.0, dim=-1)
    assert torch.equal(ensemble_log_probs(x, 4.0, "arithmetic"), torch.logsumexp(log_q, dim=0) - math.log(1))


def _zipf(vocab: int, exponent: float, seed: int = 0) -> torch.Tensor:
    """(1, V) logits of a Zipf distribution at T = 1, p_r ∝ r^(−exponent), ranks shuffled over the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    z = -exponent * torch.log(torch.arange(1, vocab + 1, dtype=torch.float64))
    return z[torch.randperm(vocab, generator=g)][None]


# Measured with V = 30,522 (BERT's vocabulary), k = 64, T = 2 (printed by the test; -s shows it):
# exponent 1.0: KL(p_T ‖ uniform-rebuilt_T) = 0.196; 1.5: 0.527 (the 0.48 lies at an exponent ≈ 1.45).
@pytest.mark.parametrize(("exponent", "expected"), [(1.0, 0.196), (1.5, 0.527)])
def test_on_a_zipf_vocabulary_the_uniform_tail_is_far_off_and_the_lumped_tail_is_not(exponent, expected):
    V, k, T = 30522, 64, 2.0
    t = _zipf(V, exponent)
    # Today's rule: top-k probabilities at T = 1, the rest spread uniformly, then softened at T.
    prob, cls = F.softmax(t, -1).topk(k, -1)
    rebuilt = topk_logits(prob, cls, V)
    log_p, log_r = F.log_softmax(t / T, -1), F.log_softmax(rebuilt / T, -1)
    uniform_off = (log_p.exp() * (log_p - log_r)).sum().item()
    print(f"exponent {exponent}: KL(p_T || uniform-tail rebuild at T) = {uniform_off:.4f}")
    assert uniform_off == pytest.approx(expected, abs=0.002)
    # The lumped rule keeps the k + 1 outcomes exactly: the top-k probabilities at T and the tail's mass.
    top = TopK.of(t, k, T)  # stored in fp32
    p_T = log_p.exp()
    torch.testing.assert_close(top.log_probs().exp(), p_T.gather(-1, top.index).float())
    assert math.isclose(1 - top.log_probs().exp().sum().item(), 1 - p_T.topk(k).values.sum().item(), abs_tol=1e-6)
    # For a student near the teacher (noise σ = 0.5 on its logits), the distillation objective each rule gives:
    s = t + 0.5 * torch.randn(t.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    full = _full_kl(t, s, T).item()
    lumped = topk_kl(s, top, T).item()
    log_q = F.log_softmax(s / T, -1)
    uniform = (log_r.exp() * (log_r - log_q)).sum().item()
    print(f"  objective: full {full:.4f}, lumped {lumped:.4f}, uniform {uniform:.4f}")
    assert 0 <= lumped <= full < uniform and full - lumped < uniform - full
