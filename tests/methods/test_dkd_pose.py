"""`dkd_pose`: its terms on fixed inputs equal the formulas (written out here), the BEGAN discriminator and
the student each learn only their own direction, k_t follows BEGAN's update, and w_a = 0 switches it off."""

from __future__ import annotations

import pytest
import torch

from kdbench.methods import Batch, Incompatible, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.tasks import task_of
from kdbench.tasks.video_pose import gaussian_heatmaps, unpack
from kdbench.zoo.datasets import load_dataset
from kdbench.zoo.models import create_model
from kdbench.zoo.models.features import feature_shapes

SHAPE = (3, 3, 16, 16)


def _setup(params: dict):
    data = load_dataset("stick_figures", {"n_train": 4, "n_val": 2, "n_test": 2, "frames": 3, "size": 16})
    torch.manual_seed(0)
    student = create_model("dkd_pose_net", {"init_widths": [8, 8], "widths": [4, 6]}, SHAPE, 13)
    teacher = create_model("pose_cnn", {"widths": [8, 8]}, SHAPE, 13)
    ctx = MethodContext(num_classes=13, num_train=4, student_features=feature_shapes(student, SHAPE),
                        teacher_features={}, task=task_of("stick_figures"))
    method = create_method("dkd_pose", params, ctx)
    x, y = data.train.x, data.train.y
    return student, teacher, method, x, y


def _terms(student, teacher, method, x, y):
    out = student(x)
    with torch.no_grad():
        t = TeacherOutput(teacher(x).logits[None])
    return out, t, method(Batch(x, y, torch.arange(4)), out, t, TrainState(0, 1))


def test_the_terms_equal_the_formulas():
    student, teacher, method, x, y = _setup({"init_weight": 0.5, "adv_weight": 0.25, "heatmap_weight": 2.0})
    out, t, terms = _terms(student, teacher, method, x, y)
    p = out.logits.detach()
    joints, vis, _ = unpack(y)
    g = gaussian_heatmaps(joints, vis, 8, 8, 2.0)
    mse = ((p - g) ** 2 * vis[..., None, None]).sum() / p.numel()
    torch.testing.assert_close(terms["mse"].detach(), 2.0 * mse)
    first = t.member_logits[0, :, 0]
    torch.testing.assert_close(terms["init"].detach(), 0.5 * ((p[:, 0] - first) ** 2).sum() / first.numel())
    real, fake = g.flatten(1, 2), p.flatten(1, 2)
    with torch.no_grad():
        l_fake = (fake - method.disc(fake)).abs().sum() / fake.numel()
        l_real = (real - method.disc(real)).abs().sum() / real.numel()
    torch.testing.assert_close(terms["adv"].detach(), 0.25 * l_fake)
    torch.testing.assert_close(terms["disc"].detach(), l_real)  # k_0 = 0
    torch.testing.assert_close(method.k, torch.clamp(0.001 * (0.5 * l_real - l_fake), 0, 1))  # one BEGAN step


def test_student_and_discriminator_learn_their_own_directions_only():
    student, teacher, method, x, y = _setup({"adv_weight": 1.0, "init_weight": 0.0, "heatmap_weight": 0.0})
    method.k.fill_(0.5)
    out, t, terms = _terms(student, teacher, method, x, y)
    sum(terms.values()).backward()
    got_student = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
    got_disc = {n: p.grad.clone() for n, p in method.disc.named_parameters()}
    assert got_student and all(p.grad is None for p in teacher.parameters())
    # the student's gradient: that of w_a · L(P) with D fixed
    student.zero_grad()
    disc = method.disc.requires_grad_(False)
    fake = student(x).logits.flatten(1, 2)
    (fake - disc(fake)).abs().mean().backward()
    for n, p in student.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(got_student[n], p.grad)
    # D's gradient: that of L(G) − k · L(P) with the student's output fixed (D minimises it: not L(P) alone)
    disc.requires_grad_(True).zero_grad()
    joints, vis, _ = unpack(y)
    real = gaussian_heatmaps(joints, vis, 8, 8, 2.0).flatten(1, 2)
    fake = fake.detach()
    ((real - disc(real)).abs().mean() - 0.5 * (fake - disc(fake)).abs().mean()).backward()
    for n, p in disc.named_parameters():
        torch.testing.assert_close(got_disc[n], p.grad)


def test_no_adversarial_term_at_weight_zero_and_a_clear_refusal_of_other_students():
    student, teacher, method, x, y = _setup({"adv_weight": 0.0})
    _, _, terms = _terms(student, teacher, method, x, y)
    assert set(terms) == {"mse", "init"} and method.disc is None
    per_frame = create_model("pose_cnn", {"widths": [4]}, SHAPE, 13)
    ctx = MethodContext(num_classes=13, num_train=4, student_features=feature_shapes(per_frame, SHAPE),
                        task=task_of("stick_figures"))
    with pytest.raises(Incompatible, match="dynamic pose kernels"):
        create_method("dkd_pose", {}, ctx)
