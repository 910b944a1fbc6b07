"""A small CNN: a stem conv, then conv-BN-ReLU stages (2×2 max-pooling between them), a linear head.

Taps follow the contract (features.py): stem, stage{i} (after ReLU), preact{i} (before it), embedding.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from torch import nn

from .base import ArchParams, ModelOutput, register_model
from .features import tap_features


class CNNParams(ArchParams):
    channels: tuple[int, ...] = Field(default=(16, 32), min_length=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    @field_validator("channels")
    @classmethod
    def _positive(cls, v):
        if any(c <= 0 for c in v):
            raise ValueError("channels must all be > 0")
        return v


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))


class CNN(nn.Module):
    def __init__(self, p: CNNParams, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"cnn needs image inputs (C, H, W), got shape {input_shape}")
        c_in, h, w = input_shape
        self.stem = nn.Sequential(_conv_bn(c_in, p.channels[0]), nn.ReLU(inplace=True))
        self.pools = nn.ModuleList()
        self.stages = nn.ModuleList()
        c = p.channels[0]
        for i, c_out in enumerate(p.channels):
            shrink = i > 0 and min(h, w) >= 2  # halve the map between stages while it can
            self.pools.append(nn.MaxPool2d(2) if shrink else nn.Identity())
            h, w = (h // 2, w // 2) if shrink else (h, w)
            self.stages.append(_conv_bn(c, c_out))
            c = c_out
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(p.dropout) if p.dropout else nn.Identity()
        self.head = nn.Linear(c, num_classes)

    def forward(self, x) -> ModelOutput:
        stem = x = self.stem(x)  # (B, C0, H, W)
        stages, preacts = [], []
        for pool, stage in zip(self.pools, self.stages, strict=True):
            pre = stage(pool(x))  # (B, C_i, H_i, W_i)
            x = self.relu(pre)
            preacts.append(pre)
            stages.append(x)
        emb = self.pool(x).flatten(1)  # (B, C_last)
        return ModelOutput(self.head(self.drop(emb)), tap_features(stem, stages, preacts, emb))


@register_model("cnn", CNNParams)
def cnn(p: CNNParams, input_shape, num_classes) -> CNN:
    return CNN(p, input_shape, num_classes)
