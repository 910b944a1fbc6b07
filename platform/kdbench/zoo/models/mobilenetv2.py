"""MobileNetV2 (Sandler et al. 2018) for 32×32 inputs, as RepDistiller's `models/mobilenetv2.py`
(HobbitLong/RepDistiller).

The defaults are RepDistiller's `mobile_half` — expansion 6, width multiplier 0.5 — the "MobileNetV2" student
of the CRD and DKD tables (812,836 parameters at 100 classes; width 1.0 gives 2,353,060). The reference keeps
ImageNet's stride-2 stem, so a 32×32 input ends at 2×2; the 1×1 head conv has 1280 channels unless width > 1.

Taps: stem after its ReLU; four stages, cut where RepDistiller's `feat` cuts the seven inverted-residual groups
(after groups 1, 2, 4 and 6). The blocks end in a linear bottleneck (no ReLU), so preact{i} is stage{i}.
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from .base import ArchParams, register_model
from .features import StagedNet, image_channels, init_convs, pool_flatten


class MobileNetV2Params(ArchParams):
    width: float = Field(default=0.5, gt=0.0)  # channel multiplier; RepDistiller's mobile_half uses 0.5
    expand_ratio: int = Field(default=6, ge=1)  # the reference's T (group 0 always expands by 1)


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class InvertedResidual(nn.Module):
    """1×1 expand - 3×3 depthwise - 1×1 linear projection; residual when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.residual = stride == 1 and c_in == c_out
        self.body = nn.Sequential(*conv_bn_relu(c_in, mid, 1), *conv_bn_relu(mid, mid, 3, stride, groups=mid),
                                  nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class LinearStage(nn.Sequential):
    """Inverted-residual groups; ends without a ReLU, so its pre-activation is its output."""

    def forward(self, x):
        out = super().forward(x)
        return out, out


# (expansion or None for the ratio parameter, channels, blocks, first stride) per group, as the reference
GROUPS = [(1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2), (None, 96, 3, 1),
          (None, 160, 3, 2), (None, 320, 1, 1)]
STAGE_GROUPS = [(0, 1), (2,), (3, 4), (5, 6)]  # where RepDistiller's feat taps: after groups 1, 2, 4, 6


def mobilenetv2(p: MobileNetV2Params, input_shape: tuple[int, ...], num_classes: int) -> StagedNet:
    c = int(32 * p.width)
    stem = nn.Sequential(*conv_bn_relu(image_channels(input_shape, "mobilenetv2"), c, 3, 2))  # (B, c, 16, 16)
    groups = []
    for t, ch, n, s in GROUPS:
        out = int(ch * p.width)
        blocks = [InvertedResidual(c if i == 0 else out, out, s if i == 0 else 1, t or p.expand_ratio)
                  for i in range(n)]
        groups.append(nn.Sequential(*blocks))
        c = out
    stages = [LinearStage(*(groups[g] for g in gs)) for gs in STAGE_GROUPS]
    last = int(1280 * p.width) if p.width > 1.0 else 1280
    neck = nn.Sequential(*conv_bn_relu(c, last, 1), pool_flatten())  # (B, last)
    model = StagedNet(stem, stages, neck, nn.Linear(last, num_classes))
    init_convs(model)
    nn.init.normal_(model.classifier.weight, 0.0, 0.01)  # as the reference
    nn.init.zeros_(model.classifier.bias)
    return model


register_model("mobilenetv2", MobileNetV2Params)(mobilenetv2)
