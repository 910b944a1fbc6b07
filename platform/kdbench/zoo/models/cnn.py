"""A small CNN: conv-BN-ReLU blocks with 2×2 max-pooling after each block, then a linear head."""

from __future__ import annotations

from pydantic import Field, field_validator
from torch import nn

from .base import ArchParams, ModelOutput, register_model


class CNNParams(ArchParams):
    channels: tuple[int, ...] = Field(default=(16, 32), min_length=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    @field_validator("channels")
    @classmethod
    def _positive(cls, v):
        if any(c <= 0 for c in v):
            raise ValueError("channels must all be > 0")
        return v


class CNN(nn.Module):
    def __init__(self, p: CNNParams, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"cnn needs image inputs (C, H, W), got shape {input_shape}")
        c_in, h, w = input_shape
        blocks = []
        for c in p.channels:
            pool = nn.MaxPool2d(2) if min(h, w) >= 2 else nn.Identity()
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(c), nn.ReLU(inplace=True), pool))
            c_in = c
            h, w = (h // 2, w // 2) if min(h, w) >= 2 else (h, w)
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(p.dropout) if p.dropout else nn.Identity()
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x) -> ModelOutput:
        feats = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            feats[f"block{i}"] = x  # (B, C_i, H_i, W_i)
        emb = self.pool(x).flatten(1)  # (B, C_last)
        feats["embedding"] = emb
        return ModelOutput(self.head(self.drop(emb)), feats)


@register_model("cnn", CNNParams)
def cnn(p: CNNParams, input_shape, num_classes) -> CNN:
    return CNN(p, input_shape, num_classes)
