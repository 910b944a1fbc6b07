"""The plain CNNs of TAKD (Mirzadeh et al., "Improved Knowledge Distillation via Teacher Assistant", AAAI 2020).

Source: `plain_cnn_cifar.py` (`ConvNetMaker`, `plane_cifar10_book`, `plane_cifar100_book`) of
imirzadeh/Teacher-Assistant-Knowledge-Distillation, read from its fork mlleo/Teacher-Assistant-Knowledge-Distillation
@ 9d3c26c (the original's file is not in our index; the books are identical in the forks battleday/HKD and
wonchulSon/DGKD). `planeN` has N conv layers: 3×3 conv (with bias)-BN-ReLU, 2×2 max-pooling where the book says,
then the conv map is *flattened* (no global pooling) into optional hidden FC+ReLU layers and the classifier.
The book is chosen by the class count as TAKD's `create_cnn_model` does (10 → CIFAR-10 book, else CIFAR-100),
unless `book` names one; in the CIFAR-100 book plane6 has no pooling after its last conv pair (8×8×128 → FC).

Taps (VGG's layout, as RepDistiller cuts VGG): stem = the first pool-delimited conv group after its ReLU;
stage{i} / preact{i} = conv group i + 1 after / before its last ReLU (taken before the pooling that follows it);
embedding = what the classifier reads (the flattened map, or the last hidden FC after its ReLU).
"""

from __future__ import annotations

import math
from typing import Literal

from torch import nn

from .base import ArchParams, register_model
from .features import StagedNet, image_channels
from .vgg import PlainStage, conv_bn_stack


class PlaneParams(ArchParams):
    book: Literal["auto", "cifar10", "cifar100"] = "auto"  # auto: TAKD's choice by class count


# book -> N -> (conv widths with "M" = 2×2 max-pool, hidden FC widths); the classifier FC is added per num_classes
BOOKS: dict[str, dict[int, tuple[tuple[int | str, ...], tuple[int, ...]]]] = {
    "cifar10": {
        2: ((16, "M", 16, "M"), ()),
        4: ((16, 16, "M", 32, 32, "M"), ()),
        6: ((16, 16, "M", 32, 32, "M", 64, 64, "M"), ()),
        8: ((16, 16, "M", 32, 32, "M", 64, 64, "M", 128, 128, "M"), (64,)),
        10: ((32, 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"), (128,)),
    },
    "cifar100": {
        2: ((32, "M", 32, "M"), ()),
        4: ((32, 32, "M", 64, 64, "M"), ()),
        6: ((32, 32, "M", 64, 64, "M", 128, 128), ()),
        8: ((32, 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, "M"), (64,)),
        10: ((32, 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"), (512,)),
    },
}


def conv_groups(spec: tuple[int | str, ...]) -> tuple[list[tuple[int, ...]], int]:
    """Split a book entry at its pools: the conv groups, and how many pools follow the last group (0 or 1)."""
    groups, current = [], []
    for item in spec:
        if item == "M":
            groups.append(tuple(current))
            current = []
        else:
            current.append(item)
    if current:
        groups.append(tuple(current))
    return groups, int(spec[-1] == "M")


def plane(spec: tuple[int | str, ...], hidden: tuple[int, ...], input_shape, num_classes: int) -> StagedNet:
    groups, tail_pool = conv_groups(spec)
    stem = nn.Sequential(conv_bn_stack(image_channels(input_shape, "plane"), groups[0]), nn.ReLU(inplace=True))
    stages = [PlainStage(nn.MaxPool2d(2), groups[i - 1][-1], groups[i]) for i in range(1, len(groups))]
    pools = len(groups) - 1 + tail_pool
    flat = groups[-1][-1] * math.prod(s // 2**pools for s in input_shape[1:])  # C × H' × W', as TAKD's bookkeeping
    neck: list[nn.Module] = [nn.MaxPool2d(2) if tail_pool else nn.Identity(), nn.Flatten()]
    for width in hidden:
        neck += [nn.Linear(flat, width), nn.ReLU(inplace=True)]
        flat = width
    return StagedNet(stem, stages, nn.Sequential(*neck), nn.Linear(flat, num_classes))


def _register(n: int) -> None:
    @register_model(f"plane{n}", PlaneParams)
    def build(p: PlaneParams, input_shape, num_classes) -> StagedNet:
        book = p.book if p.book != "auto" else ("cifar10" if num_classes == 10 else "cifar100")
        spec, hidden = BOOKS[book][n]
        return plane(spec, hidden, input_shape, num_classes)


for _n in (2, 4, 6, 8, 10):
    _register(_n)
