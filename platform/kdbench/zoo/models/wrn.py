"""Wide ResNets (Zagoruyko & Komodakis 2016) as defined by RepDistiller's `models/wrn.py` (HobbitLong/RepDistiller).

WRN-d-k: a bare 3×3 conv stem (16 channels), three stages of (d−4)/6 pre-activation blocks (BN-ReLU-conv ×2)
with 16k/32k/64k channels at strides 1, 2, 2, then BN-ReLU, global pooling and a linear head.

Taps follow RepDistiller's `feat` for pre-activation blocks, which differ from the post-activation ResNets:
  stem     — the stem conv's output (there is no BN/ReLU before the first block);
  stage{i} — the stage's raw output (residual sum; pre-activation stages end without a ReLU);
  preact{i} — that output after the BN that feeds the next ReLU (the next stage's first-block BN, or the final
              BN for stage 3): RepDistiller's `preact=True`, the tensor just before a ReLU, as AB needs. It is
              computed by the forward anyway, so tapping it costs nothing.
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .base import ArchParams, ModelOutput, register_model
from .features import image_channels, init_convs, pool_flatten, tap_features


class WRNParams(ArchParams):
    drop_rate: float = Field(default=0.0, ge=0.0, lt=1.0)  # dropout between the two convs; 0 in the benchmark


class WideBlock(nn.Module):
    """BN-ReLU-conv3×3-BN-ReLU-(dropout)-conv3×3 plus a shortcut; returns (out, BN of the input)."""

    def __init__(self, c_in: int, c_out: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm2d(c_in)
        self.branch = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Dropout(drop_rate) if drop_rate else nn.Identity(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False))
        # When the shape changes, the projection reads the activated input (as in the reference), else the raw one.
        self.project = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if c_in != c_out else None

    def forward(self, x):
        pre = self.bn_in(x)
        act = F.relu(pre)  # not in place: `pre` is a feature tap
        skip = x if self.project is None else self.project(act)
        return self.branch(act) + skip, pre


class WideStage(nn.Module):
    """Returns (out, BN of the stage input): the second item is the previous stage's pre-activation tap."""

    def __init__(self, c_in: int, c_out: int, n: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [WideBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, drop_rate) for i in range(n)])

    def forward(self, x):
        x, pre_in = self.blocks[0](x)
        for block in self.blocks[1:]:
            x, _ = block(x)
        return x, pre_in


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, c_in: int, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a WRN has depth 6n+4, got {depth}")
        n, widths = (depth - 4) // 6, (16, 16 * widen, 32 * widen, 64 * widen)
        self.stem = nn.Conv2d(c_in, widths[0], 3, 1, 1, bias=False)
        self.stages = nn.ModuleList(
            [WideStage(widths[i], widths[i + 1], n, 1 if i == 0 else 2, drop_rate) for i in range(3)])
        self.bn_out = nn.BatchNorm2d(widths[3])
        self.pool = pool_flatten()
        self.fc = nn.Linear(widths[3], num_classes)
        init_convs(self)
        nn.init.zeros_(self.fc.bias)  # as the reference

    def forward(self, x) -> ModelOutput:
        stem = self.stem(x)  # (B, 16, 32, 32)
        f1, _ = self.stages[0](stem)  # (B, 16k, 32, 32); its BN(stem) is not a tap
        f2, p1 = self.stages[1](f1)  # (B, 32k, 16, 16); p1 = BN(f1)
        f3, p2 = self.stages[2](f2)  # (B, 64k, 8, 8)
        p3 = self.bn_out(f3)
        emb = self.pool(F.relu(p3))  # (B, 64k)
        return ModelOutput(self.fc(emb), tap_features(stem, [f1, f2, f3], [p1, p2, p3], emb))


# name -> (depth, widen factor); RepDistiller models/wrn.py, wrn_40_2 ... wrn_16_1
SPECS = {"wrn_16_1": (16, 1), "wrn_16_2": (16, 2), "wrn_40_1": (40, 1), "wrn_40_2": (40, 2)}


def _register(name: str, depth: int, widen: int) -> None:
    @register_model(name, WRNParams)
    def build(p: WRNParams, input_shape, num_classes) -> WideResNet:
        return WideResNet(depth, widen, image_channels(input_shape, name), num_classes, p.drop_rate)


for _name, (_depth, _widen) in SPECS.items():
    _register(_name, _depth, _widen)
