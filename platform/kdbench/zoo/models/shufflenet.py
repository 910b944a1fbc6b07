"""ShuffleNet V1 (Zhang et al. 2018) and V2 (Ma et al. 2018) for 32×32 inputs, as RepDistiller's
`models/ShuffleNetv1.py` (`ShuffleV1`: groups 3, widths 240/480/960, 4/8/4 blocks) and `models/ShuffleNetv2.py`
(`ShuffleV2`: net size 1, widths 116/232/464 and a 1024-channel 1×1 head, 3/7/3 blocks) of HobbitLong/RepDistiller.

Both use a 1×1 conv stem (24 channels, no downsampling) and halve the resolution at each stage's first block.
Taps: stem after its ReLU; stage{i} / preact{i} after / before the last block's final ReLU. In V2 the reference's
pre-activation is the concatenation [x1, branch] *before* the channel shuffle, so preact{i} has stage{i}'s shape
but not its channel order; kept as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import ArchParams, register_model
from .features import BlockStage, StagedNet, image_channels, pool_flatten


class ShuffleNetParams(ArchParams):
    """No knobs: each registered name is one fixed benchmark architecture."""


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape  # interleave the groups: (B, g, C/g, H, W) -> (B, C/g, g, H, W)
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out))


def stem(c_in: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn(c_in, 24, 1), nn.ReLU(inplace=True))  # (B, 24, 32, 32)


class ShuffleUnitV1(nn.Module):
    """Grouped 1×1 - shuffle - depthwise 3×3 - grouped 1×1; stride 2 concatenates an avg-pooled shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int) -> None:
        super().__init__()
        mid = c_out // 4
        self.g_in = 1 if c_in == 24 else groups  # the stem's 24 channels are not grouped (as the reference)
        self.reduce = conv_bn(c_in, mid, 1, groups=self.g_in)
        self.spatial = conv_bn(mid, mid, 3, stride, groups=mid)
        self.expand = conv_bn(mid, c_out, 1, groups=groups)
        self.stride = stride
        self.pool = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()

    def forward(self, x):
        out = channel_shuffle(F.relu(self.reduce(x), inplace=True), self.g_in)
        out = self.expand(F.relu(self.spatial(out), inplace=True))
        pre = torch.cat([out, self.pool(x)], 1) if self.stride == 2 else out + x
        return F.relu(pre), pre  # not in place: `pre` is a feature tap


def shufflenet_v1_stage(c_in: int, c_out: int, n: int, groups: int) -> BlockStage:
    # The first block concatenates its input, so its branch only produces c_out - c_in channels.
    blocks = [ShuffleUnitV1(c_in, c_out - c_in, 2, groups)]
    blocks += [ShuffleUnitV1(c_out, c_out, 1, groups) for _ in range(n - 1)]
    return BlockStage(blocks)


@register_model("shufflenetv1", ShuffleNetParams)
def shufflenetv1(p: ShuffleNetParams, input_shape, num_classes) -> StagedNet:
    widths, depths = (24, 240, 480, 960), (4, 8, 4)
    stages = [shufflenet_v1_stage(widths[i], widths[i + 1], depths[i], groups=3) for i in range(3)]
    return StagedNet(stem(image_channels(input_shape, "shufflenetv1")), stages, pool_flatten(),
                     nn.Linear(widths[3], num_classes))


class DownUnitV2(nn.Module):
    """Two stride-2 branches over the whole input (dw-pw and pw-dw-pw), concatenated and shuffled."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_out // 2
        self.left = nn.Sequential(*conv_bn(c_in, c_in, 3, 2, groups=c_in), *conv_bn(c_in, mid, 1),
                                  nn.ReLU(inplace=True))
        self.right = nn.Sequential(*conv_bn(c_in, mid, 1), nn.ReLU(inplace=True), *conv_bn(mid, mid, 3, 2, groups=mid),
                                   *conv_bn(mid, mid, 1), nn.ReLU(inplace=True))

    def forward(self, x):
        out = channel_shuffle(torch.cat([self.left(x), self.right(x)], 1), 2)
        return out, out  # never a stage's last block in the benchmark; its output has no pre-activation


class SplitUnitV2(nn.Module):
    """Keeps half the channels, runs pw-dw-pw on the other half, concatenates and shuffles."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.keep = c // 2
        half = c - self.keep
        self.branch = nn.Sequential(*conv_bn(half, half, 1), nn.ReLU(inplace=True),
                                    *conv_bn(half, half, 3, groups=half), *conv_bn(half, half, 1))

    def forward(self, x):
        x1, x2 = x[:, : self.keep], x[:, self.keep :]
        pre = self.branch(x2)
        out = channel_shuffle(torch.cat([x1, F.relu(pre)], 1), 2)
        return out, torch.cat([x1, pre], 1)  # the reference's preact: unshuffled


def shufflenet_v2_stage(c_in: int, c_out: int, n: int) -> BlockStage:
    return BlockStage([DownUnitV2(c_in, c_out)] + [SplitUnitV2(c_out) for _ in range(n)])


@register_model("shufflenetv2", ShuffleNetParams)
def shufflenetv2(p: ShuffleNetParams, input_shape, num_classes) -> StagedNet:
    widths, depths, head = (24, 116, 232, 464), (3, 7, 3), 1024
    stages = [shufflenet_v2_stage(widths[i], widths[i + 1], depths[i]) for i in range(3)]
    neck = nn.Sequential(*conv_bn(widths[3], head, 1), nn.ReLU(inplace=True), pool_flatten())  # (B, 1024)
    return StagedNet(stem(image_channels(input_shape, "shufflenetv2")), stages, neck, nn.Linear(head, num_classes))
