"""CIFAR benchmark architectures: published parameter counts, the feature-tap contract, gradients, shape probe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdbench.zoo.models import count_parameters, create_model
from kdbench.zoo.models.features import feature_shapes
from kdbench.zoo.models.shufflenet import channel_shuffle

SHAPE = (3, 32, 32)

# num_classes = 100; the CRD/DKD benchmark's definitions (RepDistiller, mdistiller), as listed in docs/methods.md
BENCHMARK_COUNTS = {
    "resnet8": 83_892, "resnet14": 181_108, "resnet20": 278_324, "resnet32": 472_756, "resnet44": 667_188,
    "resnet56": 861_620, "resnet110": 1_736_564, "resnet8x4": 1_233_540, "resnet32x4": 7_433_860,
    "wrn_16_1": 180_916, "wrn_16_2": 703_284, "wrn_40_1": 569_780, "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028, "vgg11": 9_277_284, "vgg13": 9_462_180, "vgg16": 14_774_436, "vgg19": 20_086_692,
    "mobilenetv2": 812_836, "shufflenetv1": 949_258, "shufflenetv2": 1_355_528, "resnet50_cifar": 23_705_252,
}
PLANES = ["plane2", "plane4", "plane6", "plane8", "plane10"]
ARCHS = list(BENCHMARK_COUNTS) + PLANES

# how many stages RepDistiller's feat list taps (TAKD's CNNs: conv groups after the first)
STAGES = {**{n: 3 for n in BENCHMARK_COUNTS}, **{n: 4 for n in ["vgg8", "vgg11", "vgg13", "vgg16", "vgg19"]},
          "mobilenetv2": 4, "resnet50_cifar": 4, "plane2": 1, "plane4": 1, "plane6": 2, "plane8": 3, "plane10": 3}


def conv(c_in: int, c_out: int) -> int:
    """TAKD's conv layer: 3×3 weights + bias, then BN's weight and bias."""
    return 9 * c_in * c_out + c_out + 2 * c_out


def fc(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


# Read off TAKD's plain_cnn_cifar.py books at 32×32: the flattened map is C × (32 / 2^pools)².
TAKD_COUNTS = {
    ("plane2", 100): conv(3, 32) + conv(32, 32) + fc(32 * 8 * 8, 100),
    ("plane4", 100): conv(3, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + fc(64 * 8 * 8, 100),
    ("plane6", 100): conv(3, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + conv(64, 128) + conv(128, 128)
    + fc(128 * 8 * 8, 100),  # no pool after the third pair in the CIFAR-100 book
    ("plane8", 100): conv(3, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + conv(64, 128) + conv(128, 128)
    + conv(128, 256) + conv(256, 256) + fc(256 * 2 * 2, 64) + fc(64, 100),
    ("plane10", 100): conv(3, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + conv(64, 128) + conv(128, 128)
    + conv(128, 256) + 3 * conv(256, 256) + fc(256 * 2 * 2, 512) + fc(512, 100),
    ("plane2", 10): conv(3, 16) + conv(16, 16) + fc(16 * 8 * 8, 10),
    ("plane4", 10): conv(3, 16) + conv(16, 16) + conv(16, 32) + conv(32, 32) + fc(32 * 8 * 8, 10),
    ("plane6", 10): conv(3, 16) + conv(16, 16) + conv(16, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64)
    + fc(64 * 4 * 4, 10),
    ("plane8", 10): conv(3, 16) + conv(16, 16) + conv(16, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64)
    + conv(64, 128) + conv(128, 128) + fc(128 * 2 * 2, 64) + fc(64, 10),
    ("plane10", 10): conv(3, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + conv(64, 128) + conv(128, 128)
    + conv(128, 256) + 3 * conv(256, 256) + fc(256 * 2 * 2, 128) + fc(128, 10),
}


def contract_keys(n: int) -> list[str]:
    return ["stem", *(f"stage{i}" for i in range(1, n + 1)), *(f"preact{i}" for i in range(1, n + 1)), "embedding"]


def classifier(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]  # registered last in every model


@pytest.mark.parametrize("arch", list(BENCHMARK_COUNTS))
def test_parameter_count_is_the_benchmarks(arch):
    assert count_parameters(create_model(arch, {}, SHAPE, 100)) == BENCHMARK_COUNTS[arch]


@pytest.mark.parametrize("arch,classes", list(TAKD_COUNTS))
def test_takd_parameter_count_is_the_layer_formula(arch, classes):
    assert count_parameters(create_model(arch, {}, SHAPE, classes)) == TAKD_COUNTS[(arch, classes)]


def test_takd_book_can_be_named_regardless_of_class_count():
    model = create_model("plane2", {"book": "cifar10"}, SHAPE, 100)
    assert count_parameters(model) == conv(3, 16) + conv(16, 16) + fc(16 * 8 * 8, 100)


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_follows_the_feature_contract_and_trains_every_parameter(arch):
    torch.manual_seed(0)
    model = create_model(arch, {}, SHAPE, 100)
    out = model(torch.randn(2, *SHAPE))
    assert out.logits.shape == (2, 100) and torch.isfinite(out.logits).all()
    feats = out.features
    assert list(feats) == contract_keys(STAGES[arch])
    head = classifier(model)
    assert feats["embedding"].shape == (2, head.in_features)
    assert torch.allclose(head(feats["embedding"]), out.logits)  # the embedding is exactly what the head reads
    for i in range(1, STAGES[arch] + 1):
        assert feats[f"preact{i}"].shape == feats[f"stage{i}"].shape
    out.logits.sum().backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, f"no gradient reaches {silent}"


def relu_of_preact(model, feats, i):
    return torch.equal(feats[f"stage{i}"], F.relu(feats[f"preact{i}"]))


def wrn_bn_of_stage(model, feats, i):
    bn = model.stages[i].blocks[0].bn_in if i < 3 else model.bn_out  # the BN that next reads stage i
    return torch.allclose(feats[f"preact{i}"], bn(feats[f"stage{i}"]))


def kept_half_and_relu_of_branch_shuffled(model, feats, i):
    pre = feats[f"preact{i}"]  # (B, C, H, W): [kept half, branch before its ReLU], unshuffled as the reference
    keep = pre.shape[1] // 2
    return torch.equal(feats[f"stage{i}"], channel_shuffle(torch.cat([pre[:, :keep], F.relu(pre[:, keep:])], 1), 2))


RELATIONS = {  # how stage{i} relates to preact{i}, per family (see each module's docstring)
    "resnet": relu_of_preact, "vgg": relu_of_preact, "plane": relu_of_preact, "shufflenetv1": relu_of_preact,
    "mobilenetv2": lambda model, feats, i: feats[f"stage{i}"] is feats[f"preact{i}"],
    "shufflenetv2": kept_half_and_relu_of_branch_shuffled,
    "wrn": wrn_bn_of_stage,
}


@pytest.mark.parametrize("arch", ARCHS)
def test_preact_is_the_stage_output_before_its_final_activation(arch):
    torch.manual_seed(0)
    model = create_model(arch, {}, SHAPE, 100).eval()
    with torch.no_grad():
        feats = model(torch.randn(2, *SHAPE)).features
        relation = RELATIONS[next(k for k in RELATIONS if arch.startswith(k))]
        assert all(relation(model, feats, i) for i in range(1, STAGES[arch] + 1))


@pytest.mark.parametrize("arch", ARCHS)
def test_feature_shapes_match_a_real_forward(arch):
    model = create_model(arch, {}, SHAPE, 100)
    shapes = feature_shapes(model, SHAPE)
    assert model.training  # the probe restores the mode
    feats = model(torch.randn(2, *SHAPE)).features
    assert shapes == {k: tuple(v.shape[1:]) for k, v in feats.items()}
    assert list(shapes) == list(feats)


def test_feature_shapes_of_two_benchmark_teachers():
    assert feature_shapes(create_model("resnet8x4", {}, SHAPE, 100), SHAPE) == {
        "stem": (32, 32, 32), "stage1": (64, 32, 32), "stage2": (128, 16, 16), "stage3": (256, 8, 8),
        "preact1": (64, 32, 32), "preact2": (128, 16, 16), "preact3": (256, 8, 8), "embedding": (256,)}
    assert feature_shapes(create_model("wrn_40_2", {}, SHAPE, 100), SHAPE) == {
        "stem": (16, 32, 32), "stage1": (32, 32, 32), "stage2": (64, 16, 16), "stage3": (128, 8, 8),
        "preact1": (32, 32, 32), "preact2": (64, 16, 16), "preact3": (128, 8, 8), "embedding": (128,)}


def test_mobilenetv2_width_is_a_parameter_and_unknown_keys_are_errors():
    assert count_parameters(create_model("mobilenetv2", {"width": 1.0}, SHAPE, 100)) > BENCHMARK_COUNTS["mobilenetv2"]
    with pytest.raises(ValueError, match="depth"):
        create_model("resnet8", {"depth": 20}, SHAPE, 100)
