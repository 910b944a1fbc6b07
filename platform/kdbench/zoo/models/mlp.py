"""Multi-layer perceptron (Hinton et al. 2015 use 2×1200 teachers and 2×800 students on MNIST)."""

from __future__ import annotations

import math

from pydantic import Field, field_validator
from torch import nn

from .base import ArchParams, ModelOutput, register_model
from .features import tap_features


class MLPParams(ArchParams):
    widths: tuple[int, ...] = Field(default=(128,), min_length=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)  # after each hidden layer
    # On the input pixels (Hinton et al. 2015 §3 train their MNIST teacher with 20% input, 50% hidden dropout).
    input_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    @field_validator("widths")
    @classmethod
    def _positive(cls, v):
        if any(w <= 0 for w in v):
            raise ValueError("widths must all be > 0")
        return v


class MLP(nn.Module):
    def __init__(self, p: MLPParams, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        width = math.prod(input_shape)
        self.layers = nn.ModuleList()
        for w in p.widths:
            self.layers.append(nn.Linear(width, w))
            width = w
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(p.dropout) if p.dropout else nn.Identity()
        self.input_drop = nn.Dropout(p.input_dropout) if p.input_dropout else nn.Identity()
        self.head = nn.Linear(width, num_classes)

    def forward(self, x) -> ModelOutput:
        stem = x = x.flatten(1)  # (B, prod(input_shape)): the input itself; an MLP has no stem layer
        x = self.input_drop(x)
        stages, preacts = [], []
        for layer in self.layers:
            pre = layer(x)  # (B, width_i)
            x = self.relu(pre)
            preacts.append(pre)
            stages.append(x)
            x = self.drop(x)
        return ModelOutput(self.head(x), tap_features(stem, stages, preacts, stages[-1]))


@register_model("mlp", MLPParams)
def mlp(p: MLPParams, input_shape, num_classes) -> MLP:
    return MLP(p, input_shape, num_classes)
