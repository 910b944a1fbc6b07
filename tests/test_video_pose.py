"""The video_pose task (Gaussian targets, argmax decoding, PCK@0.2 on hand-made cases), the dynamic-kernel
convolutions against per-sample loops, the stick-figure twin, and FLOPs per frame of the DKD student."""

from __future__ import annotations

import math

import pytest
import torch

from kdbench.tasks import task_of
from kdbench.tasks.video_pose import PENN_JOINTS, decode, gaussian_heatmaps, pack, unpack
from kdbench.zoo.datasets import load_dataset
from kdbench.zoo.models import create_model
from kdbench.zoo.models.cost import forward_flops
from kdbench.zoo.models.pose_kernels import dynamic_conv, dynamic_depthwise_conv


def test_the_grouped_convolution_equals_a_loop_over_samples():
    g = torch.Generator().manual_seed(0)
    feats, kernels = torch.randn(3, 5, 7, 6, generator=g), torch.randn(3, 4, 5, 3, 3, generator=g)
    loop = torch.stack([torch.nn.functional.conv2d(feats[b:b + 1], kernels[b], padding=1)[0] for b in range(3)])
    torch.testing.assert_close(dynamic_conv(feats, kernels), loop)
    maps, small = torch.randn(3, 4, 7, 6, generator=g), torch.randn(3, 4, 3, 3, generator=g)
    loop = torch.stack([torch.stack([torch.nn.functional.conv2d(maps[b, j][None, None], small[b, j][None, None],
                                                                padding=1)[0, 0] for j in range(4)])
                        for b in range(3)])
    torch.testing.assert_close(dynamic_depthwise_conv(maps, small), loop)


def test_gaussian_targets_peak_at_the_joint_and_vanish_when_invisible():
    joints = torch.tensor([[[2.5 / 8, 4.5 / 8], [0.5, 0.5]]])  # pixel (row 4, col 2) centre; the second hidden
    heat = gaussian_heatmaps(joints, torch.tensor([[1.0, 0.0]]), 8, 8, sigma=2.0)
    assert heat.shape == (1, 2, 8, 8) and heat[0, 0, 4, 2] == 1.0 and heat[0, 1].abs().sum() == 0
    assert math.isclose(float(heat[0, 0, 4, 3]), math.exp(-1 / 8), rel_tol=1e-6)  # 1 pixel away, σ = 2
    assert math.isclose(float(heat[0, 0, 5, 3]), math.exp(-2 / 8), rel_tol=1e-6)
    assert torch.equal(decode(heat[:, :1]), joints[:, :1])


def _targets(joints, visible, box):
    return pack(torch.tensor(joints), torch.tensor(visible), torch.tensor(box))[None, None]  # (1, 1, 3J + 4)


def test_pck_counts_a_joint_at_the_threshold_and_ignores_invisible_ones():
    task = task_of("stick_figures")
    # 8×8 heatmaps: cells are 1/8 wide. Box 0.5 × 0.25: threshold 0.2 · 0.5 = 0.1.
    heat = torch.zeros(1, 1, 3, 8, 8)
    heat[0, 0, 0, 0, 0] = 1  # decodes to (1/16, 1/16)
    heat[0, 0, 1, 0, 0] = 1
    heat[0, 0, 2, 7, 7] = 1  # (15/16, 15/16): far from its truth, but invisible
    truth = [[1 / 16 + 0.0625, 1 / 16 + 0.0], [1 / 16 + 0.0625, 1 / 16 + 0.09375], [0.1, 0.1]]
    y = _targets(truth, [1.0, 1.0, 0.0], [0.25, 0.25, 0.75, 0.5])
    # joint 0: 0.0625 away (≤ 0.1, correct); joint 1: sqrt(0.0625² + 0.09375²) ≈ 0.1127 > 0.1 (wrong)
    assert task.score(heat, y) == {"pck": 0.5}
    exact = _targets([[1 / 16 + 0.125, 1 / 16]], [1.0], [0.0, 0.0, 0.625, 0.25])  # exactly 0.2 · 0.625 away
    assert task.score(heat[:, :, :1], exact)["pck"] == 1.0
    beyond = _targets([[1 / 16 + 0.125, 1 / 16]], [1.0], [0.0, 0.0, 0.5, 0.25])  # threshold 0.1 < 0.125
    assert task.score(heat[:, :, :1], beyond)["pck"] == 0.0
    sums = task.batch_sums(heat, y)
    assert float(task.train_metrics(sums, 1)["train_pck"]) == 0.5


def test_pck_per_joint_group_in_penn_order():
    task = task_of("stick_figures")
    joints = torch.full((13, 2), 0.5 / 8)
    joints[PENN_JOINTS.index("l_wrist")] = torch.tensor([7.5 / 8, 7.5 / 8])  # the prediction misses it
    heat = torch.zeros(1, 1, 13, 8, 8)
    heat[..., 0, 0] = 1
    y = pack(joints, torch.ones(13), torch.tensor([0.0, 0.0, 1.0, 1.0]))[None, None]
    scores = task.score(heat, y)
    assert scores["pck_wrist"] == 0.5 and scores["pck_head"] == 1.0 and scores["pck_ankle"] == 1.0
    assert math.isclose(scores["pck"], 12 / 13, rel_tol=1e-6)


def test_the_loss_masks_invisible_joints():
    task = task_of("stick_figures")
    y = _targets([[0.5, 0.5], [0.25, 0.25]], [1.0, 0.0], [0.0, 0.0, 1.0, 1.0])
    target = gaussian_heatmaps(unpack(y)[0], unpack(y)[1], 4, 4, task.SIGMA)
    pred = target.clone()
    pred[0, 0, 1] += 5.0  # anything on the invisible joint's heatmap costs nothing
    assert float(task.loss(pred, y)) == 0.0
    pred[0, 0, 0, 0, 0] += 2.0
    assert math.isclose(float(task.loss(pred, y)), 4.0 / (2 * 16), rel_tol=1e-6)


def test_stick_figures_are_penn_ordered_articulated_occluded_and_boxed():
    data = load_dataset("stick_figures", {"n_train": 64, "n_val": 8, "n_test": 8, "frames": 3, "size": 24,
                                          "occlusion": 1.0})
    assert data.input_shape == (3, 3, 24, 24) and data.num_classes == 13
    joints, visible, box = unpack(data.train.y)
    i = {n: PENN_JOINTS.index(n) for n in PENN_JOINTS}
    assert (joints[..., i["head"], 1] < joints[..., i["l_shoulder"], 1]).all()  # the head is above
    assert (joints[..., i["l_shoulder"], 0] > joints[..., i["r_shoulder"], 0]).all()  # facing the viewer
    assert (joints[..., i["l_hip"], 1] < joints[..., i["l_ankle"], 1]).all()
    assert (joints[:, 1:] - joints[:, :1]).abs().amax() > 0.05  # the limbs move between frames
    assert 0 < visible.mean() < 1  # every clip has an occluder: some joints are hidden
    inside = ((joints >= 0) & (joints <= 1)).all(-1)
    assert (visible <= inside.float()).all()  # a joint outside the frame is never visible
    within = (joints >= box[..., None, :2] - 1e-6) & (joints <= box[..., None, 2:] + 1e-6)
    assert within.all(-1)[inside].all()  # the box holds every joint in the frame
    again = load_dataset("stick_figures", {"n_train": 64, "n_val": 8, "n_test": 8, "frames": 3, "size": 24,
                                           "occlusion": 1.0})
    assert torch.equal(again.train.x, data.train.x)  # deterministic


@pytest.mark.parametrize("mode", ["full", "spatial"])
def test_the_dkd_student_outputs_heatmaps_and_kernels(mode):
    torch.manual_seed(0)
    net = create_model("dkd_pose_net", {"init_widths": [8, 8], "widths": [4, 6], "kernel_mode": mode},
                       (3, 3, 16, 16), 13)
    out = net(torch.randn(2, 3, 3, 16, 16))
    assert out.logits.shape == (2, 3, 13, 8, 8)
    assert out.features["kernels"].shape == (2, 2, 13, 6 * 9 if mode == "full" else 9)
    with pytest.raises(ValueError, match="at least 2 frames"):
        create_model("dkd_pose_net", {}, (1, 3, 16, 16), 13)


def test_flops_per_clip_count_the_initialiser_once():
    params = '{"init_widths": [16, 16, 16], "widths": [4, 8]}'
    f = {t: forward_flops("dkd_pose_net", params, (t, 3, 16, 16), 13) for t in (2, 3, 4)}
    per_frame = f[3] - f[2]
    assert f[4] - f[3] == per_frame  # every further frame adds the same: light net, kernels, grouped conv
    init = forward_flops("pose_cnn", '{"widths": [16, 16, 16]}', (1, 3, 16, 16), 13)
    light = forward_flops("pose_cnn", '{"widths": [4, 8]}', (1, 3, 16, 16), 13)
    assert light < per_frame < init  # a further frame: the light net and the kernels, less than the initialiser
    assert f[2] - per_frame == init + light - 13 * 8 * 8 * 8 * 2  # frame 1: initialiser + light net (no head)
