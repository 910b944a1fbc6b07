"""Tests of the `vs` method (Variational Student, kdbench/methods/vs.py): its loss on fixed inputs against the
formula written out here in NumPy, its parameters (KL direction, c, group axis, width mismatch, warm-up) and
the pairs it refuses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdbench.methods import Batch, Incompatible, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.zoo.models import ModelOutput, create_model

S = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])  # student logits (B=2, K=3)
T = np.array([[3.0, 1.0, 0.0], [-1.0, 2.0, 0.5]])  # teacher logits
Y = np.array([0, 2])
N_TRAIN = 50
K1, K2, K3 = 0.63576, 1.87320, 1.48695


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def nets(t_widths=(3,), s_widths=(3,), seed=0):
    torch.manual_seed(seed)
    student = create_model("svd_mlp", {"widths": list(s_widths)}, (4,), 3)
    teacher = create_model("mlp", {"widths": list(t_widths)}, (4,), 3)
    with torch.no_grad():  # spread log α over the pruned and the kept range
        for layer in student.vd_layers():
            layer.log_sigma2.uniform_(-6.0, 2.0)
    return student, teacher


def build(params, student, teacher):
    ctx = MethodContext(num_classes=3, num_train=N_TRAIN, student=student, teacher=teacher)
    return create_method("vs", params, ctx)


def run(method, epoch=1, epochs=10):
    b = Batch(torch.zeros(2, 4), torch.tensor(Y), torch.arange(2))
    t_out = TeacherOutput(torch.tensor(T, dtype=torch.float32)[None])
    return method(b, ModelOutput(torch.tensor(S, dtype=torch.float32)), t_out, TrainState(epoch, epochs))


def np_weights(model):
    return [p.detach().double().numpy() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2]


def np_vd_kl(student):
    total = 0.0
    for layer in student.vd_layers():
        w, ls2 = layer.weight.detach().double().numpy(), layer.log_sigma2.detach().double().numpy()
        la = np.clip(ls2 - np.log(w**2 + 1e-8), -8, 8)
        total += float(-(K1 / (1 + np.exp(-(K2 + K3 * la))) - 0.5 * np.log1p(np.exp(-la)) - K1).sum())
    return total


def np_block(teacher_ws, student_ws, axis):
    """Σ over layers of Σ_g max-abs over group g of the teacher's and the student's weights, row by row."""
    total = 0.0
    for wt, ws in zip(teacher_ws, student_ws, strict=True):
        if axis == "in":
            wt, ws = wt.T, ws.T
        for g in range(max(len(wt), len(ws))):
            entries = [abs(v) for m in (wt, ws) if g < len(m) for v in m[g]]
            total += max(entries)
    return total


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("c", [1, 2])
@pytest.mark.parametrize("axis", ["out", "in"])
def test_the_loss_is_the_published_objective(direction, c, axis):
    student, teacher = nets()
    params = {"temperature": 3.0, "lambda_t": 0.7, "c": c, "kl_direction": direction, "lambda_v": 0.5,
              "warmup_epochs": 4, "lambda_g": 0.01, "group_axis": axis}
    terms = run(build(params, student, teacher), epoch=1)
    p, q = softmax(T / 3.0), softmax(S / 3.0)
    kl = (p * np.log(p / q)).sum(1).mean() if direction == "forward" else (q * np.log(q / p)).sum(1).mean()
    ce = -np.log(softmax(S)[np.arange(2), Y]).mean()
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-5)
    assert terms["kd"].item() == pytest.approx(0.7 * c * 9.0 * kl, rel=1e-5)
    assert terms["vd"].item() == pytest.approx(0.5 * (2 / 4) * np_vd_kl(student) / N_TRAIN, rel=1e-5)
    expected_bs = 0.01 * np_block(np_weights(teacher), np_weights(student), axis)
    assert terms["bs"].item() == pytest.approx(expected_bs, rel=1e-5)


def test_the_block_term_reaches_the_student_only_where_it_exceeds_the_teacher():
    student, teacher = nets()
    with torch.no_grad():
        teacher.layers[0].weight.fill_(0.0)
        teacher.layers[0].weight[0, 0] = 100.0  # group 0 of layer 0: the teacher's max dominates
    terms = run(build({"lambda_t": 0.0, "lambda_v": 0.0, "lambda_g": 1.0}, student, teacher))
    terms["bs"].backward()
    grad = student.layers[0].weight.grad
    assert not grad[0].any()  # no gradient where the fixed teacher holds the group's max
    assert all((grad[g] != 0).sum() == 1 for g in (1, 2))  # one entry (the max-abs) per other group
    assert teacher.layers[0].weight.grad is None


def test_warm_up_scales_the_variational_term_linearly():
    student, teacher = nets()
    method = build({"warmup_epochs": 4, "lambda_g": 0.0}, student, teacher)
    full = run(method, epoch=7)["vd"].item()
    assert [run(method, epoch=e)["vd"].item() / full for e in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert run(build({"warmup_epochs": 0, "lambda_g": 0.0}, student, teacher), epoch=0)["vd"].item() == (
        pytest.approx(full))


def test_widths_that_differ_are_refused_or_padded():
    student, teacher = nets(t_widths=(5,), s_widths=(3,))
    with pytest.raises(Incompatible, match="group_mismatch"):
        build({}, student, teacher)
    for axis in ("out", "in"):
        terms = run(build({"group_mismatch": "pad", "lambda_g": 1.0, "group_axis": axis}, student, teacher))
        assert terms["bs"].item() == pytest.approx(np_block(np_weights(teacher), np_weights(student), axis), rel=1e-5)


def test_refused_pairs():
    student, teacher = nets(t_widths=(3, 3))
    with pytest.raises(Incompatible, match="weight layers"):
        build({}, student, teacher)  # 3 teacher layers, 2 student layers
    with pytest.raises(Incompatible, match="single teacher"):
        build({}, student, None)  # an ensemble (or a cache) has no single network
    with pytest.raises(Incompatible, match="variational_kl"):
        build({}, create_model("mlp", {"widths": [3]}, (4,), 3), teacher)  # a dense student has no VD KL


def test_sparse_alone_is_the_same_method_without_teacher_terms():
    student, teacher = nets(t_widths=(7, 7))  # no layer pairing is needed without the block term
    terms = run(build({"lambda_t": 0.0, "lambda_g": 0.0, "warmup_epochs": 0}, student, teacher))
    assert terms["kd"].item() == 0.0 and terms["bs"].item() == 0.0
    total = sum(terms.values()).item()
    ce = -np.log(softmax(S)[np.arange(2), Y]).mean()
    assert total == pytest.approx(ce + np_vd_kl(student) / N_TRAIN, rel=1e-5)  # Molchanov's per-sample SGVB loss
    assert math.isfinite(total)


def test_a_warm_up_as_long_as_the_recipe_is_warned_about():
    from kdbench.methods import METHODS

    cls = METHODS.get("vs")
    assert "warm-up of 50 epochs" in cls.schedule_warning(cls.Params(), 30)
    assert cls.schedule_warning(cls.Params(), 200) is None
    assert cls.schedule_warning(cls.Params(lambda_v=0.0), 30) is None  # no KL: nothing to warm up
