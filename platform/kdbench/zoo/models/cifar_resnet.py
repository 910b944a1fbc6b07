"""CIFAR ResNets (He et al. 2016, §4.2) as defined by RepDistiller's `models/resnet.py` (HobbitLong/RepDistiller).

Depth 6n+2 with BasicBlocks: a 3×3 stem, three stages of n blocks at strides 1, 2, 2, global pooling, a linear
head. `resnetNxK` widens the stem and stages (RepDistiller's "x4": 32/64/128/256 instead of 16/16/32/64, which
also gives stage 1 a projection shortcut). Taps: stem after its ReLU, each stage after / before its last ReLU.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .base import ArchParams, register_model
from .features import BlockStage, StagedNet, image_channels, init_convs, pool_flatten


class CifarResNetParams(ArchParams):
    """No knobs: each registered name is one fixed benchmark architecture."""


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out))


def shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a strided 1×1 conv + BN projection (option B of He et al.)."""
    return conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(conv_bn(c_in, c_out, 3, stride), nn.ReLU(inplace=True), conv_bn(c_out, c_out, 3))
        self.shortcut = shortcut(c_in, c_out, stride)

    def forward(self, x):
        pre = self.branch(x) + self.shortcut(x)
        return F.relu(pre), pre  # not in place: the pre-activation is a feature tap


def stage(block, c_in: int, c_out: int, n: int, stride: int) -> BlockStage:
    return BlockStage([block(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(n)])


def cifar_resnet(depth: int, widths: tuple[int, int, int, int], c_in: int, num_classes: int) -> StagedNet:
    if (depth - 2) % 6:
        raise ValueError(f"a BasicBlock CIFAR ResNet has depth 6n+2, got {depth}")
    n = (depth - 2) // 6
    stem = nn.Sequential(conv_bn(c_in, widths[0], 3), nn.ReLU(inplace=True))  # (B, w0, 32, 32)
    stages = [stage(BasicBlock, widths[i], widths[i + 1], n, 1 if i == 0 else 2) for i in range(3)]
    model = StagedNet(stem, stages, pool_flatten(), nn.Linear(widths[3], num_classes))
    init_convs(model)
    return model


# name -> (depth, (stem, stage1, stage2, stage3) widths); RepDistiller models/resnet.py, resnet8 ... resnet32x4
SPECS = {
    "resnet8": (8, (16, 16, 32, 64)),
    "resnet14": (14, (16, 16, 32, 64)),
    "resnet20": (20, (16, 16, 32, 64)),
    "resnet32": (32, (16, 16, 32, 64)),
    "resnet44": (44, (16, 16, 32, 64)),
    "resnet56": (56, (16, 16, 32, 64)),
    "resnet110": (110, (16, 16, 32, 64)),
    "resnet8x4": (8, (32, 64, 128, 256)),
    "resnet32x4": (32, (32, 64, 128, 256)),
}


def _register(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    @register_model(name, CifarResNetParams)
    def build(p: CifarResNetParams, input_shape, num_classes) -> StagedNet:
        return cifar_resnet(depth, widths, image_channels(input_shape, name), num_classes)


for _name, (_depth, _widths) in SPECS.items():
    _register(_name, _depth, _widths)
