"""DKD, DIST and CRD: losses against NumPy written from the papers/benchmark code, defaults, gradients,
CRD's memory bank, Z and negative sampling, and a few steps through the real engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdbench.engine import run_job
from kdbench.jobs import Component, Job, Upstream
from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.methods.crd import sample_negatives
from kdbench.methods.kd import kd_loss
from kdbench.store import Store
from kdbench.suite.schema import Recipe
from kdbench.zoo.models import ModelOutput

RNG = np.random.default_rng(0)
S = RNG.normal(size=(6, 5)) * 3  # student logits (B=6, K=5)
T1 = RNG.normal(size=(6, 5)) * 3  # teacher logits
T2 = RNG.normal(size=(6, 5)) * 3  # a second teacher
Y = np.array([0, 1, 2, 3, 4, 1])


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ce(z, y):
    return float(-np.log(softmax(z)[np.arange(len(y)), y]).mean())


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def logit_terms(name, params, s=S, teacher=None, epoch=0):
    method = create_method(name, params, MethodContext(5, 10))
    teacher = teacher if teacher is not None else TeacherOutput(t(T1)[None])
    return method(Batch(t(s), torch.tensor(Y), torch.arange(len(Y))), ModelOutput(t(s)), teacher,
                  TrainState(epoch, 100))


# ---------------------------------------------------------------- DKD


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


# ---------------------------------------------------------------- DIST


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


@pytest.mark.parametrize("name", ["dkd", "dist"])
def test_logit_methods_send_gradients_to_the_student_only(name):
    s = t(S).requires_grad_()
    teacher_logits = t(T1).requires_grad_()
    method = create_method(name, {}, MethodContext(5, 10))
    terms = method(Batch(s, torch.tensor(Y), torch.arange(6)), ModelOutput(s), TeacherOutput(teacher_logits[None]),
                   TrainState(5, 10))
    sum(terms.values()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and torch.isfinite(s.grad).all()
    assert teacher_logits.grad is None


# ---------------------------------------------------------------- CRD

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


# ---------------------------------------------------------------- through the engine


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("store"))
    recipe = Recipe(epochs=2, batch_size=64).model_dump(mode="json")
    ds = Component("digits", {"train_fraction": 1.0})
    model = Component("cnn", {"channels": [8, 16], "dropout": 0.0})
    job = Job("teacher", ds, model, recipe, Component("none", {}), 0)
    run_job(job, store)
    return store, job, ds, recipe


@pytest.mark.parametrize(("name", "overrides"), [("dkd", {}), ("dist", {}),
                                                 ("crd", {"nce_k": 256, "feat_dim": 32})])  # small K: CPU time
def test_method_trains_through_the_engine(name, overrides, trained_teacher):
    store, teacher, ds, recipe = trained_teacher
    params = METHODS.get(name).Params(**overrides).model_dump(mode="json")
    student = Component("cnn", {"channels": [4, 8], "dropout": 0.0})
    upstream = (Upstream(teacher.job_id, teacher.model),)
    job = Job("student", ds, student, recipe, Component(name, params), 0, None, upstream)
    final = run_job(job, store)
    assert np.isfinite(final["test_acc"])
    history = json.loads(store.read_bytes(Store.artifact(job.job_id, "history.json")))
    assert len(history) == 2 and all(np.isfinite(h["train_loss"]) for h in history)
