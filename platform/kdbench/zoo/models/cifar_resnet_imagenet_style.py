"""ImageNet-style ResNet-50 adapted to 32×32 inputs, as RepDistiller's `models/resnetv2.py` `ResNet50`
(HobbitLong/RepDistiller; the kuangliu/pytorch-cifar variant).

A 3×3 stride-1 stem (64 channels, no max-pool), four stages of 3/4/6/3 bottlenecks (1×1-3×3-1×1, expansion 4)
at strides 1, 2, 2, 2, global pooling and a linear head: 23,705,252 parameters at 100 classes. Registered as
`resnet50_cifar` so that the name stays free for the 224×224 ImageNet model.
Taps: stem after its ReLU; four stages after / before their last ReLU.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .base import ArchParams, register_model
from .cifar_resnet import conv_bn, shortcut, stage
from .features import StagedNet, image_channels, init_convs, pool_flatten


class ResNet50CifarParams(ArchParams):
    """No knobs: the registered name is one fixed benchmark architecture."""


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        mid = c_out // self.expansion
        self.branch = nn.Sequential(conv_bn(c_in, mid, 1), nn.ReLU(inplace=True), conv_bn(mid, mid, 3, stride),
                                    nn.ReLU(inplace=True), conv_bn(mid, c_out, 1))
        self.shortcut = shortcut(c_in, c_out, stride)

    def forward(self, x):
        pre = self.branch(x) + self.shortcut(x)
        return F.relu(pre), pre  # not in place: the pre-activation is a feature tap


@register_model("resnet50_cifar", ResNet50CifarParams)
def resnet50_cifar(p: ResNet50CifarParams, input_shape, num_classes) -> StagedNet:
    widths, depths = (64, 256, 512, 1024, 2048), (3, 4, 6, 3)
    stem = nn.Sequential(conv_bn(image_channels(input_shape, "resnet50_cifar"), 64, 3), nn.ReLU(inplace=True))
    stages = [stage(Bottleneck, widths[i], widths[i + 1], depths[i], 1 if i == 0 else 2) for i in range(4)]
    model = StagedNet(stem, stages, pool_flatten(), nn.Linear(widths[4], num_classes))
    init_convs(model)
    return model
