"""Multi-layer perceptron (Hinton et al. 2015 use 2×1200 teachers and 2×800 students on MNIST)."""

from __future__ import annotations

import math

from pydantic import Field, field_validator
from torch import nn

from .base import ArchParams, ModelOutput, register_model


class MLPParams(ArchParams):
    widths: tuple[int, ...] = Field(default=(128,), min_length=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    @field_validator("widths")
    @classmethod
    def _positive(cls, v):
        if any(w <= 0 for w in v):
            raise ValueError("widths must all be > 0")
        return v


class MLP(nn.Module):
    def __init__(self, p: MLPParams, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for w in p.widths:
            layers += [nn.Linear(width, w), nn.ReLU(inplace=True)]
            if p.dropout:
                layers.append(nn.Dropout(p.dropout))
            width = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x) -> ModelOutput:
        emb = self.body(x)  # (B, widths[-1])
        return ModelOutput(self.head(emb), {"embedding": emb})


@register_model("mlp", MLPParams)
def mlp(p: MLPParams, input_shape, num_classes) -> MLP:
    return MLP(p, input_shape, num_classes)
