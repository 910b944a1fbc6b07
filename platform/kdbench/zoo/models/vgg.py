"""VGG with BN for 32×32 inputs, as RepDistiller's `models/vgg.py` (HobbitLong/RepDistiller; `vggN` = its `vggN_bn`).

Five conv groups (3×3 conv with bias, BN, ReLU), 2×2 max-pooling between groups 0-1, 1-2 and 2-3 (and 3-4 only for
64×64 inputs, as the reference), global average pooling and a single linear layer (the FC stack is removed).
Taps: stem = group 0 after its ReLU; stage{i} = group i after / preact{i} before its last ReLU, i = 1..4.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .base import ArchParams, register_model
from .features import StagedNet, image_channels, init_convs, pool_flatten


class VGGParams(ArchParams):
    """No knobs: each registered name is one fixed benchmark architecture."""


def conv_bn_stack(c_in: int, widths: tuple[int, ...]) -> nn.Sequential:
    """Conv3×3(bias)-BN-ReLU per width, ending at the last BN: its output is the group's pre-activation."""
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(c_in, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        c_in = w
    return nn.Sequential(*layers[:-1])


class PlainStage(nn.Module):
    """(optional pooling) → conv group; returns (after, before) its final ReLU."""

    def __init__(self, pool: nn.Module, c_in: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.pool = pool
        self.convs = conv_bn_stack(c_in, widths)

    def forward(self, x):
        pre = self.convs(self.pool(x))
        return F.relu(pre), pre  # not in place: `pre` is a feature tap


def vgg(groups: tuple[tuple[int, ...], ...], input_shape: tuple[int, ...], num_classes: int) -> StagedNet:
    c_in = image_channels(input_shape, "vgg")
    stem = nn.Sequential(conv_bn_stack(c_in, groups[0]), nn.ReLU(inplace=True))  # (B, 64, 32, 32)
    # The reference pools before group 4 only at 64×64, so 32×32 inputs reach group 4 at 4×4.
    pools = [nn.MaxPool2d(2) for _ in range(3)] + [nn.MaxPool2d(2) if input_shape[1] == 64 else nn.Identity()]
    stages = [PlainStage(pools[i - 1], groups[i - 1][-1], groups[i]) for i in range(1, 5)]
    model = StagedNet(stem, stages, pool_flatten(), nn.Linear(groups[4][-1], num_classes))
    init_convs(model)
    nn.init.normal_(model.classifier.weight, 0.0, 0.01)  # as the reference
    nn.init.zeros_(model.classifier.bias)
    return model


# name -> conv widths per group; RepDistiller models/vgg.py `cfg` S, A, B, D, E
SPECS = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def _register(name: str, groups: tuple[tuple[int, ...], ...]) -> None:
    @register_model(name, VGGParams)
    def build(p: VGGParams, input_shape, num_classes) -> StagedNet:
        return vgg(groups, input_shape, num_classes)


for _name, _groups in SPECS.items():
    _register(_name, _groups)
