"""Sparse variational dropout networks (Molchanov et al. 2017; layers in sparse_vd.py): the students of Variational
Student (Hegde et al. 2020, methods/vs.py).

- `svd_mlp`: an MLP of VD linear layers; default widths (300, 100): LeNet-300-100, the paper's MNIST network.
- `svd_vgg`: the RepDistiller VGG with BN of zoo/models/vgg.py (`cfg`: vgg8…vgg19) with VD convolutions and a VD
  classifier: layer for layer the dense `vggN`, so a dense teacher's weights pair with the student's.

Both take `threshold`: the log α at and above which a weight is zero at evaluation (the paper's 3).
Taps as their dense counterparts (mlp, vgg).
"""

from __future__ import annotations

import math
from typing import Literal

import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from .base import ArchParams, ModelOutput, register_model
from .features import StagedNet, image_channels, pool_flatten, tap_features
from .sparse_vd import THRESHOLD, Conv2dSVDO, LinearSVDO, VariationalModel
from .vgg import SPECS


class SVDMLPParams(ArchParams):
    widths: tuple[int, ...] = Field(default=(300, 100), min_length=1)
    threshold: float = Field(default=THRESHOLD, gt=-8.0, le=8.0)  # log α pruning threshold at evaluation

    @field_validator("widths")
    @classmethod
    def _positive(cls, v):
        if any(w <= 0 for w in v):
            raise ValueError("widths must all be > 0")
        return v


class SVDMLP(VariationalModel):
    def __init__(self, p: SVDMLPParams, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        width = math.prod(input_shape)
        self.layers = nn.ModuleList()
        for w in p.widths:
            self.layers.append(LinearSVDO(width, w, threshold=p.threshold))
            width = w
        self.head = LinearSVDO(width, num_classes, threshold=p.threshold)

    def forward(self, x) -> ModelOutput:
        stem = x = x.flatten(1)  # (B, prod(input_shape))
        stages, preacts = [], []
        for layer in self.layers:
            pre = layer(x)  # (B, width_i)
            x = F.relu(pre)
            preacts.append(pre)
            stages.append(x)
        return ModelOutput(self.head(x), tap_features(stem, stages, preacts, stages[-1]))


@register_model("svd_mlp", SVDMLPParams)
def svd_mlp(p: SVDMLPParams, input_shape, num_classes) -> SVDMLP:
    return SVDMLP(p, input_shape, num_classes)


class SVDVGGParams(ArchParams):
    cfg: Literal["vgg8", "vgg11", "vgg13", "vgg16", "vgg19"] = "vgg16"
    threshold: float = Field(default=THRESHOLD, gt=-8.0, le=8.0)


class _Stage(nn.Module):
    def __init__(self, pool: nn.Module, convs: nn.Sequential) -> None:
        super().__init__()
        self.pool, self.convs = pool, convs

    def forward(self, x):
        pre = self.convs(self.pool(x))
        return F.relu(pre), pre


class SVDVGG(VariationalModel, StagedNet):
    """StagedNet's forward and taps; VariationalModel's protocol."""


def _convs(c_in: int, widths: tuple[int, ...], threshold: float) -> nn.Sequential:
    """VD Conv3×3(bias)-BN-ReLU per width, ending at the last BN (as vgg.conv_bn_stack)."""
    layers: list[nn.Module] = []
    for w in widths:
        conv = Conv2dSVDO(c_in, w, 3, padding=1, threshold=threshold)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # RepDistiller's init
        nn.init.zeros_(conv.bias)
        layers += [conv, nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        c_in = w
    return nn.Sequential(*layers[:-1])


@register_model("svd_vgg", SVDVGGParams)
def svd_vgg(p: SVDVGGParams, input_shape, num_classes) -> SVDVGG:
    groups = SPECS[p.cfg]
    c_in = image_channels(input_shape, "svd_vgg")
    stem = nn.Sequential(_convs(c_in, groups[0], p.threshold), nn.ReLU(inplace=True))
    pools = [nn.MaxPool2d(2) for _ in range(3)] + [nn.MaxPool2d(2) if input_shape[1] == 64 else nn.Identity()]
    stages = [_Stage(pools[i - 1], _convs(groups[i - 1][-1], groups[i], p.threshold)) for i in range(1, 5)]
    head = LinearSVDO(groups[4][-1], num_classes, threshold=p.threshold)
    nn.init.normal_(head.weight, 0.0, 0.01)
    nn.init.zeros_(head.bias)
    return SVDVGG(stem, stages, pool_flatten(), head)
