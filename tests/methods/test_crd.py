"""Tests of the `crd` method (kdbench/methods/crd.py): its loss against references written from the paper or
the benchmark code, its defaults and where its gradients go (tests/methods/test_contract.py checks what every
method shares)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.methods.crd import sample_negatives
from kdbench.zoo.models import ModelOutput

from .logit_helpers import CASES_METHOD_TRAINS_THROUGH, check_method_trains_through_the_engine, t

LABELS = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2])  # N = 12, pools of other classes: 7, 8, 9
DS, DT = 6, 5  # student / teacher embedding widths


def crd_ctx(labels=LABELS, num_classes=3):
    return MethodContext(num_classes, len(labels), {"embedding": (DS,)}, {"embedding": (DT,)}, labels)


def crd(params=None, labels=LABELS):
    torch.manual_seed(0)
    return create_method("crd", {"feat_dim": 4, **(params or {})}, crd_ctx(labels)).double()


def np_unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def np_nce(p, n_data):
    """RepDistiller's ContrastLoss on P (B, 1 + K), positive first."""
    k = p.shape[1] - 1
    c = k / n_data
    d1 = np.log(p[:, 0] / (p[:, 0] + c + 1e-7))
    d0 = np.log(c / (p[:, 1:] + c + 1e-7))
    return -(d1.sum() + d0.sum()) / p.shape[0]


class NumpyCRD:
    """CRD's memory/NCE step re-implemented from crd/memory.py + crd/criterion.py, on the method's weights."""

    def __init__(self, method):
        self.ws, self.bs = (x.detach().numpy() for x in (method.embed_s.weight, method.embed_s.bias))
        self.wt, self.bt = (x.detach().numpy() for x in (method.embed_t.weight, method.embed_t.bias))
        self.mem_s, self.mem_t = method.memory_s.numpy().copy(), method.memory_t.numpy().copy()
        self.z = [None, None]
        self.tau, self.mom = method.params.nce_t, method.params.nce_m

    def step(self, f_s, f_t, index, neg):
        vs, vt = np_unit(f_s @ self.ws.T + self.bs), np_unit(f_t @ self.wt.T + self.bt)
        rows = np.concatenate([index[:, None], neg], 1)
        out_s = np.exp(np.einsum("bkd,bd->bk", self.mem_t[rows], vs) / self.tau)  # student anchor
        out_t = np.exp(np.einsum("bkd,bd->bk", self.mem_s[rows], vt) / self.tau)  # teacher anchor
        n = len(self.mem_s)
        self.z = [z if z is not None else out.mean() * n for z, out in zip(self.z, (out_s, out_t), strict=True)]
        loss = np_nce(out_s / self.z[0], n) + np_nce(out_t / self.z[1], n)
        for mem, v in ((self.mem_s, vs), (self.mem_t, vt)):
            mem[index] = np_unit(self.mom * mem[index] + (1 - self.mom) * v)
        return loss


def test_crd_loss_memory_update_and_frozen_z_match_numpy():
    method = crd({"nce_k": 5})
    ref = NumpyCRD(method)
    rng = np.random.default_rng(1)
    for index in (np.array([0, 6, 10]), np.array([1, 6, 9])):  # sample 6 again: its updated row is the positive
        f_s, f_t = rng.normal(size=(3, DS)), rng.normal(size=(3, DT))
        neg = sample_negatives(LABELS[index], method.order, method.start, method.count, 5).numpy()
        expected = ref.step(f_s, f_t, index, neg)
        got = method.contrast(t(f_s), t(f_t), torch.tensor(index), torch.tensor(neg))
        assert got.item() == pytest.approx(expected, rel=1e-10)
        np.testing.assert_allclose(method.memory_s.numpy(), ref.mem_s, rtol=1e-12)
        np.testing.assert_allclose(method.memory_t.numpy(), ref.mem_t, rtol=1e-12)
        np.testing.assert_allclose(method.z.numpy(), ref.z, rtol=1e-12)  # set by the first batch, then frozen


def test_crd_memory_update_touches_only_the_batch_rows_and_keeps_them_unit():
    method = crd()
    before_s, before_t = method.memory_s.clone(), method.memory_t.clone()
    stdv = 1 / np.sqrt(4 / 3)
    assert before_s.abs().max() <= stdv and before_t.abs().max() <= stdv  # uniform in ±1/√(feat_dim/3)
    index = torch.tensor([2, 7])
    method.contrast(torch.randn(2, DS, dtype=torch.float64), torch.randn(2, DT, dtype=torch.float64), index,
                    torch.tensor([[5, 9], [0, 11]]))
    others = torch.ones(12, dtype=torch.bool)
    others[index] = False
    for after, before in ((method.memory_s, before_s), (method.memory_t, before_t)):
        assert torch.equal(after[others], before[others])
        assert torch.allclose(after[index].norm(dim=1), torch.ones(2, dtype=torch.float64))


def test_crd_z_and_memories_are_checkpointed():
    method = crd()
    batch = (torch.randn(3, DS, dtype=torch.float64), torch.randn(3, DT, dtype=torch.float64), torch.tensor([0, 5, 9]),
             torch.tensor([[5, 9], [0, 11], [1, 8]]))
    assert (method.z < 0).all()
    method.contrast(*batch)
    z = method.z.clone()
    assert (z > 0).all()
    method.contrast(*batch)
    assert torch.equal(method.z, z)
    state = method.state_dict()
    assert {"z", "memory_s", "memory_t"} <= set(state) and "order" not in state
    fresh = crd()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.z, z) and torch.equal(fresh.memory_s, method.memory_s)


def test_crd_negatives_come_uniformly_from_other_classes_only():
    labels = torch.tensor([2, 0, 1, 0, 2, 2, 1, 0, 0, 3, 2, 0])  # unsorted, imbalanced
    method = create_method("crd", {"feat_dim": 4}, MethodContext(4, 12, {"embedding": (DS,)},
                                                                  {"embedding": (DT,)}, labels))
    assert method.k == 12 - 5  # capped at the smallest pool: class 0 has 5 of the 12 samples
    y = labels.repeat(100)  # every class, many times
    torch.manual_seed(0)
    neg = sample_negatives(y, method.order, method.start, method.count, 2000)  # (1200, 2000)
    assert neg.shape == (1200, 2000) and neg.dtype == torch.long
    assert (labels[neg] != y.unsqueeze(1)).all()
    for c in range(4):
        drawn = torch.bincount(neg[y == c].flatten(), minlength=12)
        pool = labels != c
        assert (drawn[~pool] == 0).all() and (drawn[pool] > 0).all()
        freq = drawn[pool].double() / drawn.sum()
        assert torch.allclose(freq, torch.full_like(freq, 1 / int(pool.sum())), rtol=0.05)  # uniform


def test_crd_keeps_the_benchmark_k_on_cifar_sized_data():
    labels = torch.arange(100).repeat_interleave(500)  # CIFAR-100's training split
    ctx = MethodContext(100, 50000, {"embedding": (64,)}, {"embedding": (256,)}, labels)
    assert create_method("crd", {}, ctx).k == 16384


def test_crd_defaults_are_the_benchmarks():
    p = METHODS.get("crd").Params()
    assert (p.ce_weight, p.kd_weight, p.weight) == (1.0, 0.0, 0.8)  # -r 1 -a 0 -b 0.8
    assert (p.feat_dim, p.nce_k, p.nce_t, p.nce_m) == (128, 16384, 0.07, 0.5)  # train_student.py
    needs = METHODS.get("crd").needs
    assert needs.indices and needs.features == ("embedding",)


def test_crd_refuses_an_ensemble_and_missing_labels():
    with pytest.raises(ValueError, match="teacher's feature taps"):
        create_method("crd", {}, MethodContext(3, 12, {"embedding": (DS,)}, {}, LABELS))
    with pytest.raises(ValueError, match="train_labels"):
        create_method("crd", {}, MethodContext(3, 12, {"embedding": (DS,)}, {"embedding": (DT,)}))


def test_crd_forward_sends_gradients_to_student_and_heads_not_teacher():
    method = crd()
    f_s = torch.randn(4, DS, dtype=torch.float64, requires_grad=True)
    f_t = torch.randn(4, DT, dtype=torch.float64, requires_grad=True)  # a teacher tensor that could take grads
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y, index = LABELS[[0, 5, 9, 3]], torch.tensor([0, 5, 9, 3])
    torch.manual_seed(1)
    terms = method(Batch(logits, y, index), ModelOutput(logits, {"embedding": f_s}),
                   TeacherOutput(logits.detach()[None], features={"embedding": f_t}), TrainState(0, 1))
    assert set(terms) == {"ce", "crd"}
    # The same step from a fresh copy with the same negatives gives 0.8 × the contrast loss.
    torch.manual_seed(1)
    neg = sample_negatives(y, method.order, method.start, method.count, method.k)
    twin = crd()
    expected = twin.contrast(f_s.detach(), f_t.detach(), index, neg)
    assert terms["crd"].item() == pytest.approx(0.8 * expected.item(), rel=1e-12)
    sum(terms.values()).backward()
    assert f_s.grad is not None and f_s.grad.abs().sum() > 0
    assert f_t.grad is None
    for head in (method.embed_s, method.embed_t):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


@pytest.mark.parametrize("name, overrides", [c for c in CASES_METHOD_TRAINS_THROUGH if c[0] == "crd"])
def test_method_trains_through_the_engine(name, overrides, trained_teacher):
    check_method_trains_through_the_engine(name, overrides, trained_teacher)


def test_negatives_without_replacement_are_distinct_other_class_samples_uniformly_spread():
    """RepDistiller's draw (`replacement: false`): K distinct indices per anchor, never of its class; every
    other-class sample equally likely."""
    import torch

    from kdbench.methods.crd import sample_instances, sample_negatives

    torch.manual_seed(0)
    y_all = torch.arange(60) % 3  # 3 classes of 20
    order = torch.argsort(y_all, stable=True)
    count = torch.bincount(y_all)
    start = torch.cumsum(count, 0) - count
    y = torch.tensor([0, 1, 2, 0])
    neg = sample_negatives(y, order, start, count, k=40, replacement=False)  # the whole other-class pool
    for row, label in zip(neg, y, strict=True):
        assert len(set(row.tolist())) == 40 and not (y_all[row] == label).any()
    draws = torch.cat([sample_negatives(torch.zeros(200, dtype=torch.long), order, start, count, 10, False)
                       for _ in range(5)]).flatten()
    hits = torch.bincount(draws, minlength=60)[y_all != 0].float()
    assert (hits.min() / hits.max()) > 0.6  # 10,000 draws over 40 samples: ~250 each
    inst = sample_instances(torch.tensor([0, 59]), 60, 59, replacement=False)
    assert [sorted(r.tolist()) for r in inst] == [list(range(1, 60)), list(range(59))]  # all but the anchor
    with_repl = sample_negatives(y, order, start, count, k=40)  # the default keeps kdbench's first draw
    assert any(len(set(r.tolist())) < 40 for r in with_repl)
